<?php
/**
 * Plugin Name:       cmsrag webhooks
 * Description:       Keeps cmsrag's search index in step with this site: sends a signed webhook when a post, page or public custom post type is published, updated, unpublished, trashed, restored or deleted.
 * Version:           0.1.0
 * Requires at least: 5.6
 * Requires PHP:      7.4
 * Author:            cmsrag
 * Text Domain:       cmsrag
 *
 * The contract (endpoint, headers, body, answers) is docs/webhooks.md in the cmsrag repository.
 * Runs as a normal plugin or as a must-use plugin through cmsrag-webhooks-loader.php.
 *
 * @package cmsrag
 */

defined( 'ABSPATH' ) || exit;

// Installed twice (as a plugin and as an mu-plugin): the copy loaded first does the work, the other stays idle.
// This file declares no functions, so returning here cannot leave a half-declared plugin behind.
if ( defined( 'CMSRAG_WEBHOOKS_VERSION' ) ) {
	return;
}
define( 'CMSRAG_WEBHOOKS_VERSION', '0.1.0' );
define( 'CMSRAG_WEBHOOKS_FILE', __FILE__ );

require_once __DIR__ . '/includes/config.php';
require_once __DIR__ . '/includes/events.php';
require_once __DIR__ . '/includes/sender.php';
require_once __DIR__ . '/includes/queue.php';

// Changes: one logical edit fires several hooks; wp_after_insert_post (WP >= 5.6) is the reliable "saved" signal,
// also for REST saves and scheduled posts going live. Deletes only fire before_delete_post.
add_action( 'wp_after_insert_post', 'cmsrag_webhooks_on_after_insert_post', 10, 4 );
add_action( 'before_delete_post', 'cmsrag_webhooks_on_before_delete_post', 10, 2 );
add_action( 'shutdown', 'cmsrag_webhooks_on_shutdown' );

// Retries.
add_filter( 'cron_schedules', 'cmsrag_webhooks_cron_schedules' );
add_action( 'cmsrag_retry', 'cmsrag_webhooks_run_cron' );
add_action( 'init', 'cmsrag_webhooks_ensure_cron' );
register_deactivation_hook( __FILE__, 'cmsrag_webhooks_deactivate' );

if ( is_admin() ) {
	require_once __DIR__ . '/includes/admin.php';
	add_action( 'admin_menu', 'cmsrag_webhooks_admin_menu' );
	add_action( 'admin_init', 'cmsrag_webhooks_register_settings' );
	add_action( 'admin_post_cmsrag_retry_now', 'cmsrag_webhooks_handle_retry_now' );
	add_filter( 'plugin_action_links_' . plugin_basename( __FILE__ ), 'cmsrag_webhooks_action_links' );
}
