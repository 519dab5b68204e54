<?php
/**
 * Settings → cmsrag: the receiver, the site name and the secrets; the retry queue and recent failures.
 *
 * Built on the Settings API (options.php checks the nonce and manage_options). A secret is never printed back:
 * the page lists fingerprints, each with a "keep" box, and a field to add secrets, so a rotation is "add the
 * new one, update cmsrag, untick the old one". Values set by wp-config.php constants are shown read-only.
 *
 * @package cmsrag
 */

defined( 'ABSPATH' ) || exit;

/** Secrets at once: enough for a rotation, few enough to keep signing cheap. */
define( 'CMSRAG_WEBHOOKS_MAX_SECRETS', 5 );

/**
 * The admin_menu action: add Settings → cmsrag.
 *
 * @return void
 */
function cmsrag_webhooks_admin_menu() {
	add_options_page(
		__( 'cmsrag webhooks', 'cmsrag' ),
		__( 'cmsrag', 'cmsrag' ),
		'manage_options',
		'cmsrag',
		'cmsrag_webhooks_render_settings_page'
	);
}

/**
 * The plugin_action_links filter: a "Settings" link on the Plugins screen.
 *
 * @param string[] $links The plugin's links.
 * @return string[]
 */
function cmsrag_webhooks_action_links( $links ) {
	$url = admin_url( 'options-general.php?page=cmsrag' );
	array_unshift( $links, '<a href="' . esc_url( $url ) . '">' . esc_html__( 'Settings', 'cmsrag' ) . '</a>' );
	return $links;
}

/**
 * The admin_init action: register the option, its section and fields.
 *
 * @return void
 */
function cmsrag_webhooks_register_settings() {
	register_setting(
		'cmsrag_webhooks',
		CMSRAG_WEBHOOKS_SETTINGS_OPTION,
		array(
			'type'              => 'array',
			'sanitize_callback' => 'cmsrag_webhooks_sanitize_settings',
			'show_in_rest'      => false,
		)
	);
	add_settings_section( 'cmsrag_webhooks_receiver', __( 'Receiver', 'cmsrag' ), 'cmsrag_webhooks_render_section', 'cmsrag' );
	$fields = array(
		'receiver_url' => __( 'Receiver URL', 'cmsrag' ),
		'site'         => __( 'Site name', 'cmsrag' ),
		'secrets'      => __( 'Signing secrets', 'cmsrag' ),
	);
	foreach ( $fields as $field => $title ) {
		add_settings_field(
			'cmsrag_webhooks_' . $field,
			$title,
			'cmsrag_webhooks_render_' . $field . '_field',
			'cmsrag',
			'cmsrag_webhooks_receiver',
			array( 'label_for' => 'cmsrag-webhooks-' . str_replace( '_', '-', $field ) )
		);
	}
}

/**
 * Sanitise the submitted settings; a bad value is reported and the stored one kept.
 *
 * Accepts the form's shape (secrets as `keep_secrets` fingerprints plus `new_secrets` lines, marked by
 * `secrets_form`) and the stored shape (`secrets` as a list), since WordPress runs this on every update_option().
 *
 * @param mixed $input The submitted value.
 * @return array{receiver_url: string, site: string, secrets: string[]}
 */
function cmsrag_webhooks_sanitize_settings( $input ) {
	$input = is_array( $input ) ? $input : array();
	$old   = cmsrag_webhooks_stored_settings();
	$clean = $old;

	if ( isset( $input['receiver_url'] ) ) {
		$url = trim( (string) $input['receiver_url'] );
		$raw = '' === $url ? '' : esc_url_raw( $url, array( 'http', 'https' ) );
		if ( '' !== $url && ( '' === $raw || ! preg_match( '#^https?://[^/\s]+#i', $raw ) ) ) {
			cmsrag_webhooks_settings_error( 'receiver_url', __( 'The receiver URL must be an http:// or https:// address.', 'cmsrag' ) );
		} else {
			$clean['receiver_url'] = untrailingslashit( $raw );
		}
	}

	if ( isset( $input['site'] ) ) {
		$site = sanitize_text_field( (string) $input['site'] );
		if ( '' !== $site && ! preg_match( '/^[a-z0-9_-]{1,63}$/', $site ) ) {
			cmsrag_webhooks_settings_error( 'site', __( 'The site name is the one in cmsrag\'s configuration: lower-case letters, digits, - or _.', 'cmsrag' ) );
		} else {
			$clean['site'] = $site;
		}
	}

	$secrets = null;
	if ( ! empty( $input['secrets_form'] ) ) {
		$keep    = isset( $input['keep_secrets'] ) ? array_map( 'strval', (array) $input['keep_secrets'] ) : array();
		$secrets = array();
		foreach ( $old['secrets'] as $secret ) {
			if ( in_array( cmsrag_webhooks_secret_fingerprint( $secret ), $keep, true ) ) {
				$secrets[] = $secret;
			}
		}
		$new = isset( $input['new_secrets'] ) ? cmsrag_webhooks_parse_secrets( (string) $input['new_secrets'] ) : array();
		foreach ( $new as $secret ) {
			if ( strlen( $secret ) < 16 || preg_match( '/[\x00-\x1f\x7f]/', $secret ) ) {
				cmsrag_webhooks_settings_error( 'secrets', __( 'A secret must be at least 16 characters long, without control characters: it was not added.', 'cmsrag' ) );
			} else {
				$secrets[] = $secret;
			}
		}
	} elseif ( isset( $input['secrets'] ) ) {
		$secrets = $input['secrets'];
	}
	if ( null !== $secrets ) {
		$secrets = cmsrag_webhooks_parse_secrets( $secrets );
		if ( count( $secrets ) > CMSRAG_WEBHOOKS_MAX_SECRETS ) {
			cmsrag_webhooks_settings_error( 'secrets', __( 'At most 5 secrets: the oldest were removed.', 'cmsrag' ) );
			$secrets = array_slice( $secrets, -CMSRAG_WEBHOOKS_MAX_SECRETS );
		}
		$clean['secrets'] = $secrets;
	}
	return $clean;
}

/**
 * Report a settings error once (WordPress may sanitise the same submission twice).
 *
 * @param string $code    The field.
 * @param string $message What is wrong.
 * @return void
 */
function cmsrag_webhooks_settings_error( $code, $message ) {
	foreach ( get_settings_errors( CMSRAG_WEBHOOKS_SETTINGS_OPTION ) as $error ) {
		if ( $error['code'] === $code ) {
			return;
		}
	}
	add_settings_error( CMSRAG_WEBHOOKS_SETTINGS_OPTION, $code, $message );
}

/**
 * The section's introduction.
 *
 * @return void
 */
function cmsrag_webhooks_render_section() {
	echo '<p>' . esc_html__( 'Where this site sends its change events, and the secrets that sign them. A value set in wp-config.php cannot be changed here.', 'cmsrag' ) . '</p>';
}

/**
 * "Set in wp-config.php" for a locked field.
 *
 * @param string $constant The constant's name.
 * @return void
 */
function cmsrag_webhooks_render_locked_note( $constant ) {
	/* translators: %s: a PHP constant's name */
	$note = sprintf( __( 'Set in wp-config.php (%s).', 'cmsrag' ), $constant );
	echo '<p class="description">' . esc_html( $note ) . '</p>';
}

/**
 * The receiver URL field.
 *
 * @return void
 */
function cmsrag_webhooks_render_receiver_url_field() {
	$config = cmsrag_webhooks_config();
	$locked = $config['locked']['receiver_url'];
	printf(
		'<input type="url" class="regular-text code" id="cmsrag-webhooks-receiver-url" name="%s[receiver_url]" value="%s" placeholder="https://cmsrag.example.org" %s />',
		esc_attr( CMSRAG_WEBHOOKS_SETTINGS_OPTION ),
		esc_attr( $config['receiver_url'] ),
		disabled( $locked, true, false )
	);
	if ( $locked ) {
		cmsrag_webhooks_render_locked_note( 'CMSRAG_RECEIVER_URL' );
	} else {
		echo '<p class="description">' . esc_html__( 'The cmsrag receiver\'s base address; events go to /webhooks/wordpress/<site name> below it.', 'cmsrag' ) . '</p>';
	}
}

/**
 * The site name field.
 *
 * @return void
 */
function cmsrag_webhooks_render_site_field() {
	$config = cmsrag_webhooks_config();
	$locked = $config['locked']['site'];
	printf(
		'<input type="text" class="regular-text code" id="cmsrag-webhooks-site" name="%s[site]" value="%s" pattern="[a-z0-9_-]{1,63}" %s />',
		esc_attr( CMSRAG_WEBHOOKS_SETTINGS_OPTION ),
		esc_attr( $config['site'] ),
		disabled( $locked, true, false )
	);
	if ( $locked ) {
		cmsrag_webhooks_render_locked_note( 'CMSRAG_SITE' );
	} else {
		echo '<p class="description">' . esc_html__( 'This site\'s name in cmsrag\'s configuration.', 'cmsrag' ) . '</p>';
	}
}

/**
 * The secrets field: fingerprints only, a "keep" box each, and a box to add new ones.
 *
 * @return void
 */
function cmsrag_webhooks_render_secrets_field() {
	$config = cmsrag_webhooks_config();
	$locked = $config['locked']['secrets'];
	$name   = CMSRAG_WEBHOOKS_SETTINGS_OPTION;
	if ( ! $config['secrets'] ) {
		echo '<p>' . esc_html__( 'No secret yet: nothing is sent until there is one.', 'cmsrag' ) . '</p>';
	}
	echo '<ul>';
	foreach ( $config['secrets'] as $secret ) {
		$fingerprint = cmsrag_webhooks_secret_fingerprint( $secret );
		/* translators: 1: a secret's fingerprint, 2: its length */
		$label = sprintf( __( 'Secret %1$s (%2$d characters)', 'cmsrag' ), $fingerprint, strlen( $secret ) );
		echo '<li><label>';
		if ( ! $locked ) {
			printf( '<input type="checkbox" name="%s[keep_secrets][]" value="%s" checked="checked" /> ', esc_attr( $name ), esc_attr( $fingerprint ) );
		}
		echo esc_html( $label ) . '</label></li>';
	}
	echo '</ul>';
	if ( $locked ) {
		cmsrag_webhooks_render_locked_note( 'CMSRAG_WEBHOOK_SECRET' );
		return;
	}
	printf( '<input type="hidden" name="%s[secrets_form]" value="1" />', esc_attr( $name ) );
	printf(
		'<textarea id="cmsrag-webhooks-secrets" name="%s[new_secrets]" rows="2" cols="60" class="code" autocomplete="off" spellcheck="false"></textarea>',
		esc_attr( $name )
	);
	echo '<p class="description">' . esc_html__( 'Add secrets here, one per line (at least 16 characters; whsec_… secrets are used base64-decoded). Untick a secret to remove it. Every secret signs each event, so to rotate: add the new secret, give it to cmsrag, then remove the old one.', 'cmsrag' ) . '</p>';
}

/**
 * The page itself.
 *
 * @return void
 */
function cmsrag_webhooks_render_settings_page() {
	if ( ! current_user_can( 'manage_options' ) ) {
		return;
	}
	$config = cmsrag_webhooks_config();
	echo '<div class="wrap"><h1>' . esc_html( get_admin_page_title() ) . '</h1>';
	cmsrag_webhooks_render_retry_notice();
	if ( '' !== $config['endpoint'] ) {
		echo '<p>' . esc_html__( 'Events are sent to:', 'cmsrag' ) . ' <code>' . esc_html( $config['endpoint'] ) . '</code></p>';
	} else {
		echo '<div class="notice notice-warning inline"><p>' . esc_html__( 'Not configured yet: set the receiver URL, the site name and a secret. Until then no event is sent.', 'cmsrag' ) . '</p></div>';
	}
	echo '<form action="options.php" method="post">';
	settings_fields( 'cmsrag_webhooks' );
	do_settings_sections( 'cmsrag' );
	submit_button();
	echo '</form>';
	cmsrag_webhooks_render_queue();
	cmsrag_webhooks_render_failures();
	echo '</div>';
}

/**
 * The retry queue: how many events wait, the oldest ones, and a "Retry now" button.
 *
 * @return void
 */
function cmsrag_webhooks_render_queue() {
	$queue = cmsrag_webhooks_queue();
	echo '<h2>' . esc_html__( 'Retry queue', 'cmsrag' ) . '</h2>';
	if ( ! $queue ) {
		echo '<p>' . esc_html__( 'Empty: every event was delivered.', 'cmsrag' ) . '</p>';
		return;
	}
	/* translators: %d: number of events */
	$waiting = sprintf( _n( '%d event waits to be re-sent.', '%d events wait to be re-sent.', count( $queue ), 'cmsrag' ), count( $queue ) );
	echo '<p>' . esc_html( $waiting ) . '</p>';
	cmsrag_webhooks_render_table(
		array( __( 'Event', 'cmsrag' ), __( 'Document', 'cmsrag' ), __( 'Attempts', 'cmsrag' ), __( 'Next attempt', 'cmsrag' ), __( 'Last error', 'cmsrag' ) ),
		array_map(
			function ( $entry ) {
				return array( $entry['event'], $entry['id'], (string) $entry['attempts'], cmsrag_webhooks_format_time( (int) $entry['next_attempt'] ), $entry['last_error'] );
			},
			array_slice( $queue, 0, 20 )
		)
	);
	echo '<form action="' . esc_url( admin_url( 'admin-post.php' ) ) . '" method="post">';
	echo '<input type="hidden" name="action" value="cmsrag_retry_now" />';
	wp_nonce_field( 'cmsrag_retry_now' );
	submit_button( __( 'Retry now', 'cmsrag' ), 'secondary', 'submit', false );
	echo '</form>';
}

/**
 * Events given up on (rejected by the receiver, too old, or dropped from a full queue), newest first.
 *
 * @return void
 */
function cmsrag_webhooks_render_failures() {
	$failures = get_option( CMSRAG_WEBHOOKS_FAILURES_OPTION, array() );
	if ( ! is_array( $failures ) || ! $failures ) {
		return;
	}
	echo '<h2>' . esc_html__( 'Recent failures', 'cmsrag' ) . '</h2>';
	echo '<p>' . esc_html__( 'These events were not delivered and will not be retried; cmsrag\'s periodic reconcile catches up with the documents.', 'cmsrag' ) . '</p>';
	cmsrag_webhooks_render_table(
		array( __( 'When', 'cmsrag' ), __( 'What', 'cmsrag' ), __( 'Event', 'cmsrag' ), __( 'Document', 'cmsrag' ), __( 'Reason', 'cmsrag' ) ),
		array_map(
			function ( $failure ) {
				return array( cmsrag_webhooks_format_time( (int) $failure['time'] ), $failure['what'], $failure['event'], $failure['id'], $failure['error'] );
			},
			$failures
		)
	);
}

/**
 * A plain admin table; every cell is escaped.
 *
 * @param string[]        $head Column titles.
 * @param array<string[]> $rows Cells.
 * @return void
 */
function cmsrag_webhooks_render_table( array $head, array $rows ) {
	echo '<table class="widefat striped"><thead><tr>';
	foreach ( $head as $title ) {
		echo '<th scope="col">' . esc_html( $title ) . '</th>';
	}
	echo '</tr></thead><tbody>';
	foreach ( $rows as $row ) {
		echo '<tr>';
		foreach ( $row as $cell ) {
			echo '<td>' . esc_html( (string) $cell ) . '</td>';
		}
		echo '</tr>';
	}
	echo '</tbody></table>';
}

/**
 * A Unix time in the site's time zone and format.
 *
 * @param int $time Unix seconds.
 * @return string
 */
function cmsrag_webhooks_format_time( $time ) {
	return wp_date( get_option( 'date_format' ) . ' ' . get_option( 'time_format' ), $time );
}

/**
 * The admin_post_cmsrag_retry_now action: the "Retry now" button.
 *
 * @return void
 */
function cmsrag_webhooks_handle_retry_now() {
	if ( ! current_user_can( 'manage_options' ) ) {
		wp_die( esc_html__( 'Sorry, you are not allowed to do that.', 'cmsrag' ), '', array( 'response' => 403 ) );
	}
	check_admin_referer( 'cmsrag_retry_now' );
	$summary = cmsrag_webhooks_retry_now();
	$args    = array( 'page' => 'cmsrag' );
	foreach ( $summary as $key => $count ) {
		$args[ 'cmsrag_' . $key ] = (int) $count;
	}
	wp_safe_redirect( add_query_arg( $args, admin_url( 'options-general.php' ) ) );
	exit;
}

/**
 * After "Retry now": what happened, from the redirect's query arguments.
 *
 * @return void
 */
function cmsrag_webhooks_render_retry_notice() {
	// phpcs:ignore WordPress.Security.NonceVerification.Recommended -- display only: numbers from our own redirect.
	if ( ! isset( $_GET['cmsrag_delivered'] ) ) {
		return;
	}
	$count = array();
	foreach ( array( 'delivered', 'retrying', 'rejected', 'gave_up' ) as $key ) {
		// phpcs:ignore WordPress.Security.NonceVerification.Recommended
		$count[ $key ] = isset( $_GET[ 'cmsrag_' . $key ] ) ? absint( $_GET[ 'cmsrag_' . $key ] ) : 0;
	}
	/* translators: 1: delivered, 2: still failing, 3: rejected, 4: given up */
	$message = sprintf( __( 'Retried: %1$d delivered, %2$d still failing, %3$d rejected by the receiver, %4$d given up.', 'cmsrag' ), $count['delivered'], $count['retrying'], $count['rejected'], $count['gave_up'] );
	echo '<div class="notice notice-info is-dismissible"><p>' . esc_html( $message ) . '</p></div>';
}
