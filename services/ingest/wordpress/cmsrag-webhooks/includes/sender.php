<?php
/**
 * Signing and sending one webhook (Standard Webhooks headers, as in cmsrag's shared/signing.py).
 *
 * Sends are blocking with a short timeout, so the outcome is known: a 2xx is done, a definitive 4xx is logged
 * and dropped (retrying cannot help), anything else goes to the retry queue (queue.php).
 *
 * @package cmsrag
 */

defined( 'ABSPATH' ) || exit;

/** Answers that mean "this event will never be accepted" (docs/webhooks.md): log, do not retry. */
define( 'CMSRAG_WEBHOOKS_DEFINITIVE_STATUSES', array( 400, 401, 404, 413, 415, 422 ) );

/**
 * The HMAC key for a secret: a `whsec_<base64>` secret's decoded bytes, any other secret's own bytes.
 *
 * Same rule as shared/signing.py, whose base64 check is strict: only the base64 alphabet, at most two '='
 * at the end, and a length that is a multiple of 4; otherwise the secret is used as written.
 *
 * @param string $secret A secret.
 * @return string Raw key bytes.
 */
function cmsrag_webhooks_secret_key( $secret ) {
	if ( 0 === strpos( $secret, 'whsec_' ) ) {
		$encoded = substr( $secret, 6 );
		if ( 0 === strlen( $encoded ) % 4 && preg_match( '#^[A-Za-z0-9+/]*={0,2}$#', $encoded ) ) {
			$decoded = base64_decode( $encoded, true ); // phpcs:ignore WordPress.PHP.DiscouragedPHPFunctions.obfuscation_base64_decode -- the secret's documented form.
			if ( false !== $decoded ) {
				return $decoded;
			}
		}
	}
	return $secret;
}

/**
 * One signature: `v1,<base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))>`.
 *
 * @param string $secret     A secret.
 * @param string $webhook_id The webhook-id header.
 * @param int    $timestamp  The webhook-timestamp header.
 * @param string $body       The raw body.
 * @return string
 */
function cmsrag_webhooks_signature( $secret, $webhook_id, $timestamp, $body ) {
	$mac = hash_hmac( 'sha256', $webhook_id . '.' . $timestamp . '.' . $body, cmsrag_webhooks_secret_key( $secret ), true );
	return 'v1,' . base64_encode( $mac ); // phpcs:ignore WordPress.PHP.DiscouragedPHPFunctions.obfuscation_base64_encode -- the signature's format.
}

/**
 * The three Standard Webhooks headers, signed with every secret (space-separated signatures).
 *
 * @param string[] $secrets    The active secrets.
 * @param string   $webhook_id The event's id, the same on every attempt.
 * @param string   $body       The raw body.
 * @param int|null $timestamp  Unix seconds; now by default (recomputed on every attempt).
 * @return array<string, string>
 */
function cmsrag_webhooks_sign( array $secrets, $webhook_id, $body, $timestamp = null ) {
	$timestamp  = null === $timestamp ? time() : (int) $timestamp;
	$signatures = array();
	foreach ( $secrets as $secret ) {
		$signatures[] = cmsrag_webhooks_signature( $secret, $webhook_id, $timestamp, $body );
	}
	return array(
		'webhook-id'        => $webhook_id,
		'webhook-timestamp' => (string) $timestamp,
		'webhook-signature' => implode( ' ', $signatures ),
	);
}

/**
 * A new queue entry for a payload: its webhook-id is made here, once, and kept across retries.
 *
 * @param array<string, string> $payload The body's fields.
 * @return array<string, mixed>
 */
function cmsrag_webhooks_new_entry( array $payload ) {
	return array(
		'webhook_id'    => 'wp_' . wp_generate_uuid4(),
		'event'         => $payload['event'],
		'id'            => $payload['id'],
		'body'          => wp_json_encode( $payload, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE ),
		'attempts'      => 0,
		'first_attempt' => cmsrag_webhooks_now(),
		'next_attempt'  => 0,
		'last_error'    => '',
	);
}

/**
 * POST one entry to the receiver.
 *
 * @param array<string, mixed>                              $entry  A queue entry (webhook_id, body).
 * @param array{endpoint: string, secrets: string[]}        $config The settings in force.
 * @return array{outcome: string, status: int, error: string, retry_after: int} outcome is
 *         'delivered', 'rejected' (definitive, do not retry) or 'retry'.
 */
function cmsrag_webhooks_deliver( array $entry, array $config ) {
	$headers                 = cmsrag_webhooks_sign( $config['secrets'], $entry['webhook_id'], $entry['body'] );
	$headers['Content-Type'] = 'application/json';
	$headers['User-Agent']   = 'cmsrag-webhooks/' . CMSRAG_WEBHOOKS_VERSION . '; ' . home_url( '/' );
	// wp_remote_post, not wp_safe_remote_post: the receiver is often on a private address or another port.
	$response = wp_remote_post(
		$config['endpoint'],
		array(
			'timeout'     => (float) apply_filters( 'cmsrag_webhooks_timeout', 3 ),
			'redirection' => 0, // A redirected POST turns into a GET; better to see the 3xx and retry.
			'blocking'    => true, // A non-blocking send to a dead receiver reports no error: the event would be lost.
			'headers'     => $headers,
			'body'        => $entry['body'],
			'data_format' => 'body',
		)
	);
	$result = array(
		'outcome'     => 'retry',
		'status'      => 0,
		'error'       => '',
		'retry_after' => 0,
	);
	if ( is_wp_error( $response ) ) {
		$result['error'] = $response->get_error_message();
		return $result;
	}
	$result['status'] = (int) wp_remote_retrieve_response_code( $response );
	if ( $result['status'] >= 200 && $result['status'] < 300 ) {
		$result['outcome'] = 'delivered';
		return $result;
	}
	$answer          = trim( preg_replace( '/\s+/', ' ', wp_strip_all_tags( (string) wp_remote_retrieve_body( $response ) ) ) );
	$result['error'] = trim( 'HTTP ' . $result['status'] . ' ' . substr( $answer, 0, 300 ) );
	if ( in_array( $result['status'], CMSRAG_WEBHOOKS_DEFINITIVE_STATUSES, true ) ) {
		$result['outcome'] = 'rejected';
		return $result;
	}
	$retry_after = wp_remote_retrieve_header( $response, 'retry-after' );
	if ( is_string( $retry_after ) && ctype_digit( $retry_after ) ) {
		$result['retry_after'] = min( (int) $retry_after, HOUR_IN_SECONDS );
	}
	return $result;
}

/**
 * Send this request's events; what fails goes to the retry queue.
 *
 * After the first failure that is worth retrying, the rest are queued without trying: a receiver that is down
 * or hanging would otherwise cost every remaining event its full timeout (think of a bulk edit).
 *
 * @param array<int, array<string, string>> $payloads Bodies, in the order their posts changed.
 * @return bool False when the receiver failed (so this request should not also retry older events).
 */
function cmsrag_webhooks_send_new( array $payloads ) {
	$config = cmsrag_webhooks_config();
	if ( '' === $config['endpoint'] ) {
		cmsrag_webhooks_log( 'cmsrag_webhook_not_configured', array( 'events' => count( $payloads ) ) );
		return false;
	}
	$to_queue = array();
	$broken   = '';
	foreach ( $payloads as $payload ) {
		$entry = cmsrag_webhooks_new_entry( $payload );
		if ( '' !== $broken ) {
			$entry['last_error'] = 'not tried: ' . $broken;
			$to_queue[]          = $entry;
			continue;
		}
		$result = cmsrag_webhooks_deliver( $entry, $config );
		if ( 'rejected' === $result['outcome'] ) {
			cmsrag_webhooks_note_failure( $entry, 'cmsrag_webhook_rejected', $result['error'] );
		} elseif ( 'retry' === $result['outcome'] ) {
			$to_queue[] = cmsrag_webhooks_after_failed_attempt( $entry, $result );
			$broken     = $result['error'];
		}
	}
	if ( $to_queue ) {
		foreach ( $to_queue as $entry ) {
			cmsrag_webhooks_log(
				'cmsrag_webhook_queued',
				array(
					'webhook_id' => $entry['webhook_id'],
					'event'      => $entry['event'],
					'id'         => $entry['id'],
					'error'      => $entry['last_error'],
				)
			);
		}
		cmsrag_webhooks_enqueue( $to_queue );
	}
	return '' === $broken;
}
