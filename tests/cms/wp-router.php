<?php
/**
 * Router for PHP's built-in web server in front of a WordPress copy: the job Apache's .htaccess does.
 *
 * Paths naming an existing file (a stylesheet, wp-login.php, wp-admin/) are left to the built-in server, which
 * serves static files and runs .php files itself. Every other path is a "pretty" URL (a permalink, a
 * /wp-json/ REST route) that WordPress's index.php resolves.
 */
$root = rtrim($_SERVER['DOCUMENT_ROOT'], '/');
$path = rawurldecode(parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH) ?? '/');
if ($path !== '/' && (is_file($root . $path) || is_file(rtrim($root . $path, '/') . '/index.php'))) {
    return false;
}
$_SERVER['SCRIPT_NAME'] = '/index.php';
$_SERVER['PHP_SELF'] = '/index.php';
$_SERVER['SCRIPT_FILENAME'] = $root . '/index.php';
chdir($root);
require $root . '/index.php';
