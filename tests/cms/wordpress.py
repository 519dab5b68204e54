"""A real WordPress (Debian's package, PHP's built-in server, a private MariaDB) started from an empty folder.

Tests and fixture scripts talk to the real thing rather than to a guess of it: REST answers, status codes for
drafts and private posts, WXR exports are WordPress's own. Start-up takes a few seconds: the MariaDB datadir is
initialised while the WordPress tree is copied (Debian's copy cannot be used in place, its `wp-config.php`
reads `/etc/wordpress/config-<host>.php`), then `wp_install()` runs from PHP, since there is no WP-CLI here.

Every process is started in its own session (setsid) and stopped by process group: PHP's built-in server
forks workers that keep listening when only the master is killed.
"""

from __future__ import annotations

import atexit
import contextlib
import getpass
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

WORDPRESS_TREE = Path("/usr/share/wordpress")
ROUTER = Path(__file__).with_name("wp-router.php")
ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin-password"  # a throwaway test site; never reachable from outside 127.0.0.1

_MU_PLUGIN = """<?php
// Test-site tweaks: there is no sendmail here, so mail is dropped instead of logging an error per message.
add_filter('pre_wp_mail', '__return_false');
"""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def php_str(value: str) -> str:
    """`value` as a PHP single-quoted string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def php_value(value: str | int | bool | list[str]) -> str:
    """`value` as a PHP literal: a string, an integer, a boolean or a list of strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(php_value(v) for v in value) + "]"
    if any(ord(c) < 32 for c in value):  # a double-quoted literal keeps line breaks out of the file's lines
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
        return '"' + "".join(c if ord(c) >= 32 else f"\\x{ord(c):02x}" for c in escaped) + '"'
    return php_str(value)


class WordPressServer:
    """One WordPress site in `folder`: `start()`, use `base_url` and `php()`, `stop()` (or use `with`).

    `home_url` sets the site's public address (`WP_HOME`) when it should differ from where it is served,
    e.g. to give an exported WXR stable links; REST calls to `base_url` still work.
    """

    def __init__(self, folder: Path, port: int | None = None, *, home_url: str | None = None,
                 title: str = "cmsrag test site", workers: int = 4) -> None:
        self.folder = Path(folder).resolve()
        self.port = port or free_port()
        self.db_port = free_port()
        self.home_url = (home_url or self.base_url).rstrip("/")
        self.title = title
        self.workers = workers
        self.docroot = self.folder / "wordpress"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._sock_dir: Path | None = None
        self._db_password = secrets.token_hex(12)

    @property
    def pids(self) -> dict[str, int]:
        """Process (and process group) ids of the running servers, by name."""
        return {name: p.pid for name, p in self.procs.items()}

    @property
    def base_url(self) -> str:
        """Where the site is served, without a trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    # -- life cycle ---------------------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> WordPressServer:
        """Create a fresh site and start it; on failure stop what started and raise `RuntimeError` with its log."""
        atexit.register(self.stop)
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, timeout: float) -> None:
        for stale in ("mysql", "wordpress", "opcache"):  # from scratch, even in a folder used before
            shutil.rmtree(self.folder / stale, ignore_errors=True)
        (self.folder / "logs").mkdir(parents=True, exist_ok=True)
        (self.folder / "opcache").mkdir()
        # The socket lives in a short path of its own: Unix socket paths are limited to 108 bytes.
        self._sock_dir = Path(tempfile.mkdtemp(prefix="wpdb-", dir="/tmp"))
        user = getpass.getuser()  # mariadbd wants --user; our own avoids chown and unreadable parents
        with open(self.folder / "logs" / "mariadb-install.log", "ab") as log:
            init = subprocess.Popen(
                ["mariadb-install-db", "--no-defaults", f"--user={user}", f"--datadir={self.folder / 'mysql'}",
                 "--auth-root-authentication-method=socket", "--skip-test-db"],
                stdout=log, stderr=subprocess.STDOUT)
        self._copy_tree()  # meanwhile
        if init.wait() != 0:
            raise RuntimeError(f"mariadb-install-db failed:\n{self._tail('mariadb-install.log')}")
        self._spawn("mariadb", [
            "mariadbd", "--no-defaults", f"--user={user}", f"--datadir={self.folder / 'mysql'}",
            f"--socket={self._socket}", f"--pid-file={self._sock_dir / 'mariadb.pid'}",
            f"--port={self.db_port}", "--bind-address=127.0.0.1", "--skip-name-resolve", "--skip-log-bin",
            "--performance-schema=OFF", "--innodb-buffer-pool-size=64M",
            "--innodb-flush-log-at-trx-commit=0",  # throwaway data: speed over durability
            f"--log-error={self.folder / 'logs' / 'mariadb.err'}"])
        self._wait_for(self._db_ready, timeout, "mariadb", "mariadb.err")
        self._sql(f"CREATE DATABASE wordpress CHARACTER SET utf8mb4; "
                  f"CREATE USER 'wp'@'127.0.0.1' IDENTIFIED BY '{self._db_password}'; "
                  f"GRANT ALL ON wordpress.* TO 'wp'@'127.0.0.1';")
        self._write_config()
        self._install()
        # revalidate_freq=0: a plugin or wp-config.php changed while serving is seen by the next request.
        self._spawn("php", ["php", "-d", "opcache.enable_cli=1", "-d", "opcache.revalidate_freq=0",
                            "-S", f"127.0.0.1:{self.port}",
                            "-t", str(self.docroot), str(ROUTER)],
                    env={**os.environ, "PHP_CLI_SERVER_WORKERS": str(self.workers)})
        self._wait_for(self._http_ready, timeout, "php", "php.log")

    def stop(self) -> None:
        """Stop every process group started here (TERM, then KILL after 5 s); safe to call twice."""
        for name in ("php", "mariadb"):
            proc = self.procs.pop(name, None)
            if proc is not None:
                _kill_group(proc)
        if self._sock_dir is not None:
            shutil.rmtree(self._sock_dir, ignore_errors=True)
            self._sock_dir = None
        atexit.unregister(self.stop)

    def __enter__(self) -> WordPressServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- working with the site ---------------------------------------------------------------------------

    def php(self, code: str, *, user: str | None = ADMIN_USER) -> str:
        """Run PHP `code` with WordPress loaded (as `user`, so content is not run through kses); its stdout.

        One call costs ~0.2 s (WordPress boots each time): batch work into one snippet.
        """
        body = code.strip().removeprefix("<?php")
        login = f"$u = get_user_by('login', {php_str(user)}); wp_set_current_user($u ? $u->ID : 0);" if user else ""
        return self._run_php(f"<?php\n{self._cli_server_vars()}\nrequire {php_str(str(self.docroot))} . "
                             f"'/wp-load.php';\n{login}\n{body}\n")

    def php_json(self, code: str, *, user: str | None = ADMIN_USER) -> Any:
        """Run `code`, which must `echo json_encode(...)` once, and decode what it printed."""
        return json.loads(self.php(code, user=user))

    def create_user(self, login: str, role: str = "editor") -> int:
        """A new user with `role`; its id."""
        return int(self.php(f"echo wp_insert_user(['user_login' => {php_str(login)}, 'role' => {php_str(role)},"
                            f" 'user_pass' => wp_generate_password(), 'user_email' => {php_str(login)} . "
                            f"'@example.com']);"))

    def create_app_password(self, user: str = ADMIN_USER, name: str = "cmsrag") -> str:
        """A new application password for `user` (HTTP basic auth on the REST API); the plain password."""
        return self.php(
            f"$u = get_user_by('login', {php_str(user)}); if (!$u) {{ fwrite(STDERR, 'no such user'); exit(1); }}"
            f"$r = WP_Application_Passwords::create_new_application_password($u->ID, ['name' => {php_str(name)}]);"
            "if (is_wp_error($r)) { fwrite(STDERR, $r->get_error_message()); exit(1); } echo $r[0];")

    def set_permalinks(self, structure: str) -> None:
        """Change the permalink structure ('' for plain `?p=12` links, which also turns /wp-json/ off)."""
        self.php(f"global $wp_rewrite; $wp_rewrite->set_permalink_structure({php_str(structure)});"
                 "flush_rewrite_rules(false);")

    def install_plugin(self, source: Path, *, activate: bool = True) -> str:
        """Copy the plugin folder `source` into wp-content/plugins (replacing an older copy); activate it unless
        told not to. Returns the plugin's name for WordPress, e.g. "my-plugin/my-plugin.php"."""
        dest = self.docroot / "wp-content" / "plugins" / source.name
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(source, dest)
        mains = [f for f in sorted(dest.glob("*.php")) if "Plugin Name:" in f.read_text(errors="replace")[:8192]]
        if not mains:
            raise RuntimeError(f"{source}: no .php file with a 'Plugin Name:' header")
        plugin = f"{source.name}/{mains[0].name}"
        if activate:
            self.activate_plugin(plugin)
        return plugin

    def activate_plugin(self, plugin: str) -> None:
        """Activate an installed plugin ("folder/main.php"), running its activation hook."""
        self.php(f"require_once ABSPATH . 'wp-admin/includes/plugin.php'; $r = activate_plugin({php_str(plugin)});"
                 "if (is_wp_error($r)) { fwrite(STDERR, $r->get_error_message()); exit(1); }")

    def deactivate_plugin(self, plugin: str) -> None:
        """Deactivate a plugin ("folder/main.php"), running its deactivation hook."""
        self.php(f"require_once ABSPATH . 'wp-admin/includes/plugin.php'; deactivate_plugins({php_str(plugin)});")

    def add_mu_plugin(self, filename: str, code: str) -> Path:
        """Write a must-use plugin (`code` is PHP source) as wp-content/mu-plugins/`filename`."""
        path = self._mu_plugins / filename
        path.write_text(code)
        return path

    def install_mu_plugin(self, source: Path) -> Path:
        """Copy a file or folder into wp-content/mu-plugins (WordPress loads only the .php files directly in it)."""
        dest = self._mu_plugins / source.name
        if source.is_dir():
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(source, dest)
        else:
            shutil.copyfile(source, dest)
        return dest

    def remove_mu_plugin(self, name: str) -> None:
        """Remove a file or folder from wp-content/mu-plugins, if there."""
        path = self._mu_plugins / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)

    def set_config(self, name: str, value: str | int | bool | list[str] | None) -> None:
        """Define the constant `name` in wp-config.php (before WordPress loads), or remove it with None."""
        config = self.docroot / "wp-config.php"
        marker = f"define({php_str(name)}, "
        lines = [line for line in config.read_text().splitlines() if not line.startswith(marker)]
        if value is not None:
            at = next(i for i, line in enumerate(lines) if line.startswith("$table_prefix"))
            lines.insert(at, f"{marker}{php_value(value)});")
        config.write_text("\n".join(lines) + "\n")

    # -- internals -----------------------------------------------------------------------------------------

    @property
    def _mu_plugins(self) -> Path:
        return self.docroot / "wp-content" / "mu-plugins"

    @property
    def _socket(self) -> Path:
        assert self._sock_dir is not None, "start() first"
        return self._sock_dir / "mariadb.sock"

    def _copy_tree(self) -> None:
        subprocess.run(["cp", "-a", str(WORDPRESS_TREE), str(self.docroot)], check=True)
        for debian_only in (".htaccess", "wp-config.php"):  # a symlink into /etc/wordpress, Debian's loader
            (self.docroot / debian_only).unlink(missing_ok=True)
        (self.docroot / "wp-content" / "mu-plugins").mkdir(exist_ok=True)
        (self.docroot / "wp-content" / "mu-plugins" / "cmsrag-test-site.php").write_text(_MU_PLUGIN)

    def _write_config(self) -> None:
        keys = ("AUTH_KEY", "SECURE_AUTH_KEY", "LOGGED_IN_KEY", "NONCE_KEY",
                "AUTH_SALT", "SECURE_AUTH_SALT", "LOGGED_IN_SALT", "NONCE_SALT")
        defines = {
            "DB_NAME": "wordpress", "DB_USER": "wp", "DB_PASSWORD": self._db_password,
            "DB_HOST": f"127.0.0.1:{self.db_port}", "DB_CHARSET": "utf8mb4", "DB_COLLATE": "",
            **{k: secrets.token_hex(32) for k in keys},
            "WP_HOME": self.home_url, "WP_SITEURL": self.home_url,
            "WP_ENVIRONMENT_TYPE": "local",  # application passwords are ignored on non-HTTPS sites otherwise
        }
        lines = [f"define('{k}', {php_str(v)});" for k, v in defines.items()]
        (self.docroot / "wp-config.php").write_text("\n".join([
            "<?php", *lines,
            "define('DISABLE_WP_CRON', true);  // no surprise work inside requests under test",
            "define('WP_DEBUG', false);",
            "define('WP_DEBUG_DISPLAY', false);  // PHP 8.2 deprecations must not corrupt JSON answers",
            "@ini_set('display_errors', '0');",
            "define('AUTOMATIC_UPDATER_DISABLED', true);",
            "define('WP_HTTP_BLOCK_EXTERNAL', true);  // offline: fail update checks at once (localhost allowed)",
            "$table_prefix = 'wp_';",
            "if (!defined('ABSPATH')) { define('ABSPATH', __DIR__ . '/'); }",
            "require_once ABSPATH . 'wp-settings.php';", ""]))

    def _install(self) -> None:
        # wp_install() probes pretty permalinks with HTTP requests to the (not yet served) site and mails the
        # admin: short-circuit both, then set the permalink structure ourselves.
        self._run_php(
            "<?php\ndefine('WP_INSTALLING', true);\n" + self._cli_server_vars() +
            f"\nrequire {php_str(str(self.docroot))} . '/wp-load.php';\n"
            "add_filter('pre_http_request', fn() => new WP_Error('offline', 'not during install'));\n"
            "function wp_new_blog_notification() {}\n"
            "require_once ABSPATH . 'wp-admin/includes/upgrade.php';\n"
            f"$r = wp_install({php_str(self.title)}, '{ADMIN_USER}', 'admin@example.com', true, '', "
            f"'{ADMIN_PASSWORD}');\n"
            "if (is_wp_error($r)) { fwrite(STDERR, $r->get_error_message()); exit(1); }\n"
            "global $wp_rewrite; $wp_rewrite->set_permalink_structure('/%postname%/'); flush_rewrite_rules(false);\n")

    def _cli_server_vars(self) -> str:
        # WordPress reads these even under php-cli (e.g. for the REST URL and canonical redirects).
        return (f"$_SERVER['HTTP_HOST'] = '127.0.0.1:{self.port}'; $_SERVER['SERVER_NAME'] = '127.0.0.1';"
                f" $_SERVER['SERVER_PORT'] = '{self.port}'; $_SERVER['REQUEST_URI'] = '/';"
                " $_SERVER['REQUEST_METHOD'] = 'GET';")

    def _run_php(self, source: str) -> str:
        with tempfile.NamedTemporaryFile("w", suffix=".php", dir=self.folder, delete=False) as f:
            f.write(source)
        try:
            # Scripts compiled once are cached on disk for the next php() (half its cost); changed files are seen,
            # since the cache checks timestamps and skips files changed in the last 2 s.
            r = subprocess.run(["php", "-d", "display_errors=stderr", "-d", "opcache.enable_cli=1",
                                "-d", f"opcache.file_cache={self.folder / 'opcache'}",
                                "-d", "opcache.file_cache_only=1", f.name],
                               capture_output=True, text=True, cwd=self.docroot, timeout=300)
        finally:
            os.unlink(f.name)
        if r.returncode != 0:
            raise RuntimeError(f"php exited with {r.returncode}:\n{r.stderr[-3000:]}\n{r.stdout[-2000:]}")
        return r.stdout

    def _sql(self, statements: str) -> None:
        subprocess.run(["mariadb", "--no-defaults", f"--socket={self._socket}", "-uroot", "-e", statements],
                       check=True, capture_output=True)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        with open(self.folder / "logs" / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, start_new_session=True, env=env)
        (self.folder / "pids.json").write_text(json.dumps(self.pids))

    def _tail(self, name: str) -> str:
        path = self.folder / "logs" / name
        return path.read_text(errors="replace")[-3000:] if path.exists() else "(no log)"

    def _db_ready(self) -> bool:
        return subprocess.run(["mariadb-admin", "--no-defaults", f"--socket={self._socket}", "-uroot", "ping"],
                              capture_output=True).returncode == 0

    def _http_ready(self) -> bool:
        try:
            return requests.get(f"{self.base_url}/wp-json/", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def _wait_for(self, ready: Callable[[], bool], timeout: float, name: str, log: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline or self.procs[name].poll() is not None:
                raise RuntimeError(f"{name} did not become ready:\n{self._tail(log)}")
            time.sleep(0.05)


def live_pids(pgid: int) -> list[int]:
    """Processes of group `pgid` still running (not zombies: where PID 1 does not reap, they linger)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # exited while we looked
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            found.append(int(stat.parent.name))
    return found


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """TERM the whole group (mariadbd shuts down cleanly), then KILL what is left, e.g. PHP's workers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while live_pids(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
