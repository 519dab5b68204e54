<?php
/**
 * The retry queue: events the receiver did not accept yet, re-sent with backoff until they are, or for a day.
 *
 * Kept in one non-autoloaded option (bounded: the oldest event is dropped, and logged, past the limit), changed
 * only under a lock row in wp_options, so two requests failing at once cannot lose each other's events. Retries
 * run from WP-Cron (`cmsrag_retry`, every minute while the queue is not empty), from the shutdown of any later
 * request once the earliest retry is due (a few events at most), and on demand: cmsrag_webhooks_retry_now().
 * An event keeps its webhook-id on every attempt; the signature's timestamp is new each time.
 *
 * @package cmsrag
 */

defined( 'ABSPATH' ) || exit;

define( 'CMSRAG_WEBHOOKS_QUEUE_OPTION', 'cmsrag_webhooks_queue' );
define( 'CMSRAG_WEBHOOKS_NEXT_RETRY_OPTION', 'cmsrag_webhooks_next_retry' ); // Autoloaded: read by every request.
define( 'CMSRAG_WEBHOOKS_FAILURES_OPTION', 'cmsrag_webhooks_failures' );
define( 'CMSRAG_WEBHOOKS_LOCK_OPTION', 'cmsrag_webhooks_queue_lock' );
define( 'CMSRAG_WEBHOOKS_GIVE_UP_AFTER', DAY_IN_SECONDS );
define( 'CMSRAG_WEBHOOKS_MAX_BACKOFF', HOUR_IN_SECONDS );
define( 'CMSRAG_WEBHOOKS_LEASE', 2 * MINUTE_IN_SECONDS ); // A claimed event is due again if its run dies.
define( 'CMSRAG_WEBHOOKS_SHUTDOWN_BATCH', 5 );
define( 'CMSRAG_WEBHOOKS_CRON_BATCH', 100 );
define( 'CMSRAG_WEBHOOKS_KEPT_FAILURES', 20 );

/**
 * Most events the queue holds (1,000 unless the `cmsrag_webhooks_queue_limit` filter says otherwise).
 *
 * @return int
 */
function cmsrag_webhooks_queue_limit() {
	return max( 1, (int) apply_filters( 'cmsrag_webhooks_queue_limit', 1000 ) );
}

/**
 * Seconds to wait after the n-th failed attempt: 1, 2, 4 … minutes, at most an hour.
 *
 * @param int $attempts Failed attempts so far (>= 1).
 * @return int
 */
function cmsrag_webhooks_backoff( $attempts ) {
	$minutes = 2 ** min( 10, max( 0, (int) $attempts - 1 ) );
	return min( $minutes * MINUTE_IN_SECONDS, CMSRAG_WEBHOOKS_MAX_BACKOFF );
}

/**
 * An entry after a failed attempt: one more attempt counted, the error kept, the next attempt scheduled
 * (no sooner than the receiver's Retry-After).
 *
 * @param array<string, mixed>                          $entry  A queue entry.
 * @param array{error: string, retry_after: int}        $result What cmsrag_webhooks_deliver() answered.
 * @return array<string, mixed>
 */
function cmsrag_webhooks_after_failed_attempt( array $entry, array $result ) {
	$entry['attempts']     = (int) $entry['attempts'] + 1;
	$entry['last_error']   = $result['error'];
	$delay                 = max( cmsrag_webhooks_backoff( $entry['attempts'] ), (int) $result['retry_after'] );
	$entry['next_attempt'] = cmsrag_webhooks_now() + min( $delay, CMSRAG_WEBHOOKS_MAX_BACKOFF );
	return $entry;
}

/**
 * Take the queue lock: a row inserted with INSERT IGNORE, which only one request can do at a time. A lock older
 * than 30 s is from a request that died, and is broken. Waits up to 5 s.
 *
 * @return bool Whether the lock is held.
 */
function cmsrag_webhooks_lock() {
	global $wpdb;
	$deadline = microtime( true ) + 5;
	do {
		// phpcs:ignore WordPress.DB.DirectDatabaseQuery -- an atomic insert is the lock; the options API has none.
		$taken = $wpdb->query( $wpdb->prepare( "INSERT IGNORE INTO {$wpdb->options} (option_name, option_value, autoload) VALUES (%s, %s, 'no')", CMSRAG_WEBHOOKS_LOCK_OPTION, (string) time() ) );
		if ( 1 === $taken ) {
			return true;
		}
		// phpcs:ignore WordPress.DB.DirectDatabaseQuery
		$since = (int) $wpdb->get_var( $wpdb->prepare( "SELECT option_value FROM {$wpdb->options} WHERE option_name = %s", CMSRAG_WEBHOOKS_LOCK_OPTION ) );
		if ( $since > 0 && $since < time() - 30 ) {
			// phpcs:ignore WordPress.DB.DirectDatabaseQuery
			$wpdb->query( $wpdb->prepare( "DELETE FROM {$wpdb->options} WHERE option_name = %s AND option_value = %s", CMSRAG_WEBHOOKS_LOCK_OPTION, (string) $since ) );
			continue;
		}
		usleep( 50000 );
	} while ( microtime( true ) < $deadline );
	return false;
}

/**
 * Release the queue lock.
 *
 * @return void
 */
function cmsrag_webhooks_unlock() {
	global $wpdb;
	// phpcs:ignore WordPress.DB.DirectDatabaseQuery
	$wpdb->query( $wpdb->prepare( "DELETE FROM {$wpdb->options} WHERE option_name = %s", CMSRAG_WEBHOOKS_LOCK_OPTION ) );
}

/**
 * Forget cached copies of the queue options: another request may have changed them since this one read them.
 *
 * @return void
 */
function cmsrag_webhooks_forget_cached_options() {
	foreach ( array( 'alloptions', 'notoptions', CMSRAG_WEBHOOKS_QUEUE_OPTION ) as $key ) {
		wp_cache_delete( $key, 'options' );
	}
}

/**
 * The queued events, oldest first, as stored now.
 *
 * @return array<int, array<string, mixed>>
 */
function cmsrag_webhooks_queue() {
	cmsrag_webhooks_forget_cached_options();
	$queue = get_option( CMSRAG_WEBHOOKS_QUEUE_OPTION, array() );
	return is_array( $queue ) ? array_values( array_filter( $queue, 'is_array' ) ) : array();
}

/**
 * Change the queue under the lock: `$change` gets the queue by reference; its return value is returned.
 * Also keeps the "next retry" hint and the cron event in step with the queue.
 *
 * @param callable $change function ( array &$queue ): mixed.
 * @return mixed
 */
function cmsrag_webhooks_change_queue( $change ) {
	$locked = cmsrag_webhooks_lock();
	if ( ! $locked ) {
		// Better a rare lost update than a dropped event: go on, and say so.
		cmsrag_webhooks_log( 'cmsrag_webhook_queue_lock_timeout' );
	}
	try {
		$queue  = cmsrag_webhooks_queue();
		$result = $change( $queue );
		$queue  = array_values( $queue );
		$next   = 0;
		foreach ( $queue as $entry ) {
			$next = 0 === $next ? (int) $entry['next_attempt'] : min( $next, (int) $entry['next_attempt'] );
		}
		if ( $queue ) {
			update_option( CMSRAG_WEBHOOKS_QUEUE_OPTION, $queue, false );
		} else {
			delete_option( CMSRAG_WEBHOOKS_QUEUE_OPTION );
		}
		update_option( CMSRAG_WEBHOOKS_NEXT_RETRY_OPTION, $next, true );
	} finally {
		if ( $locked ) {
			cmsrag_webhooks_unlock();
		}
	}
	if ( $queue ) {
		cmsrag_webhooks_schedule_cron();
	} else {
		wp_clear_scheduled_hook( 'cmsrag_retry' );
	}
	return $result;
}

/**
 * Add events to the queue. A newer event for a document replaces a queued one (the receiver fetches the current
 * state anyway), except a queued deletion. Past the limit, the oldest events are dropped and logged.
 *
 * @param array<int, array<string, mixed>> $entries New entries (after their first attempt, or not tried).
 * @return void
 */
function cmsrag_webhooks_enqueue( array $entries ) {
	cmsrag_webhooks_change_queue(
		function ( array &$queue ) use ( $entries ) {
			foreach ( $entries as $entry ) {
				if ( empty( $entry['next_attempt'] ) ) {
					$entry['next_attempt'] = cmsrag_webhooks_now() + MINUTE_IN_SECONDS;
				}
				foreach ( $queue as $i => $queued ) {
					if ( $queued['id'] === $entry['id'] && 'deleted' !== $queued['event'] ) {
						unset( $queue[ $i ] );
					}
				}
				$queue[] = $entry;
			}
			$queue = array_values( $queue );
			$limit = cmsrag_webhooks_queue_limit();
			while ( count( $queue ) > $limit ) {
				$dropped = array_shift( $queue );
				cmsrag_webhooks_note_failure( $dropped, 'cmsrag_webhook_dropped', 'the retry queue is full (' . $limit . ' events)' );
			}
		}
	);
}

/**
 * Re-send queued events.
 *
 * @param int  $limit At most this many (0: no limit).
 * @param bool $force Also those whose next attempt is not due yet.
 * @return array{delivered: int, rejected: int, retrying: int, gave_up: int, remaining: int}
 */
function cmsrag_webhooks_retry( $limit, $force ) {
	$summary = array(
		'delivered' => 0,
		'rejected'  => 0,
		'retrying'  => 0,
		'gave_up'   => 0,
		'remaining' => 0,
	);
	$config  = cmsrag_webhooks_config();
	if ( '' === $config['endpoint'] ) {
		$summary['remaining'] = count( cmsrag_webhooks_queue() );
		return $summary;
	}
	$now     = cmsrag_webhooks_now();
	$claimed = cmsrag_webhooks_change_queue(
		function ( array &$queue ) use ( $limit, $force, $now ) {
			$claimed = array();
			foreach ( $queue as $i => $entry ) {
				if ( $limit > 0 && count( $claimed ) >= $limit ) {
					break;
				}
				if ( $force || (int) $entry['next_attempt'] <= $now ) {
					$claimed[ $entry['webhook_id'] ] = $entry;
					$queue[ $i ]['next_attempt']     = $now + CMSRAG_WEBHOOKS_LEASE;
				}
			}
			return $claimed;
		}
	);
	if ( ! $claimed ) {
		$summary['remaining'] = count( cmsrag_webhooks_queue() );
		return $summary;
	}
	$results = array();
	foreach ( $claimed as $webhook_id => $entry ) {
		$results[ $webhook_id ] = cmsrag_webhooks_deliver( $entry, $config );
		if ( 'retry' === $results[ $webhook_id ]['outcome'] ) {
			break; // The receiver is down or failing: the rest keep their turn, untouched.
		}
	}
	return cmsrag_webhooks_change_queue(
		function ( array &$queue ) use ( $claimed, $results, $summary ) {
			foreach ( $queue as $i => $entry ) {
				$webhook_id = $entry['webhook_id'];
				if ( ! isset( $claimed[ $webhook_id ] ) ) {
					continue; // Not ours, or added since.
				}
				if ( ! isset( $results[ $webhook_id ] ) ) {
					$queue[ $i ]['next_attempt'] = $claimed[ $webhook_id ]['next_attempt']; // Not tried.
					continue;
				}
				$result = $results[ $webhook_id ];
				if ( 'delivered' === $result['outcome'] ) {
					unset( $queue[ $i ] );
					++$summary['delivered'];
				} elseif ( 'rejected' === $result['outcome'] ) {
					unset( $queue[ $i ] );
					cmsrag_webhooks_note_failure( $entry, 'cmsrag_webhook_rejected', $result['error'] );
					++$summary['rejected'];
				} elseif ( cmsrag_webhooks_now() - (int) $entry['first_attempt'] >= CMSRAG_WEBHOOKS_GIVE_UP_AFTER ) {
					unset( $queue[ $i ] );
					$entry['attempts'] = (int) $entry['attempts'] + 1;
					cmsrag_webhooks_note_failure( $entry, 'cmsrag_webhook_gave_up', $result['error'] );
					++$summary['gave_up'];
				} else {
					$queue[ $i ] = cmsrag_webhooks_after_failed_attempt( $entry, $result );
					++$summary['retrying'];
				}
			}
			$summary['remaining'] = count( $queue );
			return $summary;
		}
	);
}

/**
 * Re-send every queued event now, due or not: for operators ("Retry now" on the settings page) and tests
 * (which run WordPress with DISABLE_WP_CRON).
 *
 * @return array{delivered: int, rejected: int, retrying: int, gave_up: int, remaining: int}
 */
function cmsrag_webhooks_retry_now() {
	return cmsrag_webhooks_retry( 0, true );
}

/**
 * The cmsrag_retry cron event: re-send the events that are due.
 *
 * @return void
 */
function cmsrag_webhooks_run_cron() {
	cmsrag_webhooks_retry( CMSRAG_WEBHOOKS_CRON_BATCH, false );
}

/**
 * At the end of any request: if a queued event is due, re-send a few (cheap to check: the hint is autoloaded).
 *
 * @return void
 */
function cmsrag_webhooks_maybe_retry_on_shutdown() {
	$next = (int) get_option( CMSRAG_WEBHOOKS_NEXT_RETRY_OPTION, 0 );
	if ( $next > 0 && $next <= cmsrag_webhooks_now() ) {
		cmsrag_webhooks_retry( CMSRAG_WEBHOOKS_SHUTDOWN_BATCH, false );
	}
}

/**
 * Log an event given up on and keep it in the short list shown on the settings page.
 *
 * @param array<string, mixed> $entry  The queue entry.
 * @param string               $what   cmsrag_webhook_rejected, cmsrag_webhook_gave_up or cmsrag_webhook_dropped.
 * @param string               $reason Why.
 * @return void
 */
function cmsrag_webhooks_note_failure( array $entry, $what, $reason ) {
	cmsrag_webhooks_log(
		$what,
		array(
			'webhook_id' => $entry['webhook_id'],
			'event'      => $entry['event'],
			'id'         => $entry['id'],
			'attempts'   => (int) $entry['attempts'],
			'error'      => $reason,
		)
	);
	$failures = get_option( CMSRAG_WEBHOOKS_FAILURES_OPTION, array() );
	$failures = is_array( $failures ) ? $failures : array();
	array_unshift(
		$failures,
		array(
			'time'       => time(),
			'what'       => $what,
			'webhook_id' => $entry['webhook_id'],
			'event'      => $entry['event'],
			'id'         => $entry['id'],
			'attempts'   => (int) $entry['attempts'],
			'error'      => $reason,
		)
	);
	update_option( CMSRAG_WEBHOOKS_FAILURES_OPTION, array_slice( $failures, 0, CMSRAG_WEBHOOKS_KEPT_FAILURES ), false );
}

/**
 * The cron_schedules filter: a one-minute schedule for retries.
 *
 * @param array<string, array{interval: int, display: string}> $schedules The known schedules.
 * @return array<string, array{interval: int, display: string}>
 */
function cmsrag_webhooks_cron_schedules( $schedules ) {
	$schedules['cmsrag_every_minute'] = array(
		'interval' => MINUTE_IN_SECONDS,
		'display'  => __( 'Every minute (cmsrag webhook retries)', 'cmsrag' ),
	);
	return $schedules;
}

/**
 * Schedule the retry event if it is not scheduled.
 *
 * @return void
 */
function cmsrag_webhooks_schedule_cron() {
	if ( ! wp_next_scheduled( 'cmsrag_retry' ) ) {
		wp_schedule_event( time() + MINUTE_IN_SECONDS, 'cmsrag_every_minute', 'cmsrag_retry' );
	}
}

/**
 * On init: events are waiting but the cron event is gone (e.g. the plugin was reactivated): schedule it again.
 *
 * @return void
 */
function cmsrag_webhooks_ensure_cron() {
	if ( (int) get_option( CMSRAG_WEBHOOKS_NEXT_RETRY_OPTION, 0 ) > 0 ) {
		cmsrag_webhooks_schedule_cron();
	}
}

/**
 * Deactivation: stop the cron event (the queue is kept for a later reactivation; uninstall removes it).
 *
 * @return void
 */
function cmsrag_webhooks_deactivate() {
	wp_clear_scheduled_hook( 'cmsrag_retry' );
}
