<?php
/**
 * Settings: the receiver URL, the site's name in cmsrag, and the signing secrets.
 *
 * Stored in one option edited on Settings → cmsrag; each of the constants CMSRAG_RECEIVER_URL, CMSRAG_SITE and
 * CMSRAG_WEBHOOK_SECRET in wp-config.php overrides its part (the page then shows it read-only). Several secrets
 * are all used to sign (one signature each), so a secret can be rotated without losing events.
 *
 * @package cmsrag
 */

defined( 'ABSPATH' ) || exit;

define( 'CMSRAG_WEBHOOKS_SETTINGS_OPTION', 'cmsrag_webhooks_settings' );

/**
 * The stored settings, completed with defaults (constants not applied).
 *
 * @return array{receiver_url: string, site: string, secrets: string[]}
 */
function cmsrag_webhooks_stored_settings() {
	$stored = get_option( CMSRAG_WEBHOOKS_SETTINGS_OPTION, array() );
	$stored = is_array( $stored ) ? $stored : array();
	return array(
		'receiver_url' => isset( $stored['receiver_url'] ) ? (string) $stored['receiver_url'] : '',
		'site'         => isset( $stored['site'] ) ? (string) $stored['site'] : '',
		'secrets'      => cmsrag_webhooks_parse_secrets( isset( $stored['secrets'] ) ? $stored['secrets'] : array() ),
	);
}

/**
 * The settings in force: the stored ones, overridden by wp-config.php constants.
 *
 * `locked` says which parts come from a constant; `endpoint` is the URL to POST to, '' while incomplete.
 *
 * @return array{receiver_url: string, site: string, secrets: string[], locked: array<string, bool>, endpoint: string}
 */
function cmsrag_webhooks_config() {
	$config           = cmsrag_webhooks_stored_settings();
	$config['locked'] = array(
		'receiver_url' => defined( 'CMSRAG_RECEIVER_URL' ),
		'site'         => defined( 'CMSRAG_SITE' ),
		'secrets'      => defined( 'CMSRAG_WEBHOOK_SECRET' ),
	);
	if ( $config['locked']['receiver_url'] ) {
		$config['receiver_url'] = trim( (string) CMSRAG_RECEIVER_URL );
	}
	if ( $config['locked']['site'] ) {
		$config['site'] = trim( (string) CMSRAG_SITE );
	}
	if ( $config['locked']['secrets'] ) {
		$config['secrets'] = cmsrag_webhooks_parse_secrets( CMSRAG_WEBHOOK_SECRET );
	}
	$complete           = '' !== $config['receiver_url'] && '' !== $config['site'] && array() !== $config['secrets'];
	$config['endpoint'] = $complete ? cmsrag_webhooks_endpoint( $config['receiver_url'], $config['site'] ) : '';
	return $config;
}

/**
 * The webhook URL for a receiver base URL and a site name: `{receiver}/webhooks/wordpress/{site}`.
 *
 * @param string $receiver_url The receiver's base URL, e.g. https://cmsrag.example.org.
 * @param string $site         The site's name in cmsrag's configuration.
 * @return string
 */
function cmsrag_webhooks_endpoint( $receiver_url, $site ) {
	return untrailingslashit( $receiver_url ) . '/webhooks/wordpress/' . rawurlencode( $site );
}

/**
 * Secrets from a string (one per line) or a list; trimmed, without blanks or repeats.
 *
 * @param mixed $value A string or an array of strings.
 * @return string[]
 */
function cmsrag_webhooks_parse_secrets( $value ) {
	if ( is_string( $value ) ) {
		$value = preg_split( '/\r\n|\r|\n/', $value );
	}
	if ( ! is_array( $value ) ) {
		return array();
	}
	$secrets = array();
	foreach ( $value as $secret ) {
		$secret = is_scalar( $secret ) ? trim( (string) $secret ) : '';
		if ( '' !== $secret && ! in_array( $secret, $secrets, true ) ) {
			$secrets[] = $secret;
		}
	}
	return $secrets;
}

/**
 * A short, stable name for a secret that does not reveal it: the start of its SHA-256.
 *
 * @param string $secret A secret.
 * @return string 12 hex digits.
 */
function cmsrag_webhooks_secret_fingerprint( $secret ) {
	return substr( hash( 'sha256', $secret ), 0, 12 );
}

/**
 * "Now" for scheduling retries (not for signatures, which always use the real clock).
 *
 * The `cmsrag_webhooks_now` filter lets tests move time forward instead of sleeping.
 *
 * @return int Unix seconds.
 */
function cmsrag_webhooks_now() {
	return (int) apply_filters( 'cmsrag_webhooks_now', time() );
}

/**
 * Write one line to the PHP error log, in the `event key=value` form the rest of cmsrag logs in.
 *
 * @param string               $event  A stable snake_case event name.
 * @param array<string, mixed> $fields Values to append; strings are quoted when they contain spaces.
 * @return void
 */
function cmsrag_webhooks_log( $event, array $fields = array() ) {
	$line = 'cmsrag_webhooks ' . $event;
	foreach ( $fields as $key => $value ) {
		$value = is_scalar( $value ) ? (string) $value : wp_json_encode( $value );
		$value = preg_replace( '/[\r\n]+/', ' ', $value );
		$line .= ' ' . $key . '=' . ( preg_match( '/[\s"]/', $value ) ? wp_json_encode( $value ) : $value );
	}
	error_log( $line ); // phpcs:ignore WordPress.PHP.DevelopmentFunctions.error_log_error_log -- operators need these lines.
}
