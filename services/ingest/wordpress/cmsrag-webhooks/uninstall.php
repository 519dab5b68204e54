<?php
/**
 * Uninstall: remove the plugin's options and its cron event. Events still queued are lost, by intent.
 *
 * @package cmsrag
 */

defined( 'WP_UNINSTALL_PLUGIN' ) || exit;

foreach ( array( 'cmsrag_webhooks_settings', 'cmsrag_webhooks_queue', 'cmsrag_webhooks_next_retry', 'cmsrag_webhooks_failures', 'cmsrag_webhooks_queue_lock' ) as $cmsrag_option ) {
	delete_option( $cmsrag_option );
}
wp_clear_scheduled_hook( 'cmsrag_retry' );
