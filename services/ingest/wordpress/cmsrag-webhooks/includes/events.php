<?php
/**
 * Which changes become which webhook events, collected per request and sent once at shutdown.
 *
 * One editor action fires several hooks (WordPress saves revisions, re-saves meta, REST and classic editors call
 * different functions), so events are gathered in a per-request array keyed by post and sent when the request
 * ends: the last event for a post wins, except `deleted`, which always wins.
 *
 * An event is sent when the post's public (or private) state may have changed; see
 * cmsrag_webhooks_event_for_transition(). The receiver never trusts the event's name for content: it fetches the
 * post's current state (except for `deleted`), so a redundant event costs one fetch, a missing one a stale index.
 *
 * @package cmsrag
 */

defined( 'ABSPATH' ) || exit;

/**
 * Post types never sent, whatever their settings: media (not indexed; deleting one fires no before_delete_post),
 * menu items, revisions and editor internals.
 */
define( 'CMSRAG_WEBHOOKS_SKIPPED_TYPES', array( 'attachment', 'nav_menu_item', 'revision', 'customize_changeset', 'oembed_cache', 'user_request', 'wp_block', 'wp_template', 'wp_template_part', 'wp_global_styles', 'wp_navigation' ) );

/**
 * How a post status looks from the index's side.
 *
 * @param string $status A post status, or 'new' for a post that did not exist before.
 * @return string 'public' (anyone may read it), 'private' (readable with credentials), 'trash', or 'hidden'.
 */
function cmsrag_webhooks_visibility( $status ) {
	if ( 'trash' === $status ) {
		return 'trash';
	}
	if ( in_array( $status, array( 'new', 'auto-draft', 'inherit' ), true ) ) {
		return 'hidden';
	}
	$status_object = get_post_status_object( $status );
	if ( $status_object && $status_object->public ) {
		return 'public';
	}
	if ( $status_object && $status_object->private ) {
		return 'private';
	}
	return 'hidden'; // Drafts, pending review, scheduled (future), unknown statuses.
}

/**
 * The event for a post going from one status to another, or null when nothing readable changed.
 *
 * Private posts count as readable: cmsrag indexes them when it has credentials for the site. WordPress itself
 * calls a private post "Privately Published", hence `published` for draft → private.
 *
 * @param string $old_status The status before the save; 'new' for a post created by it.
 * @param string $new_status The status after the save.
 * @return string|null published, updated, unpublished, trashed, restored, or null.
 */
function cmsrag_webhooks_event_for_transition( $old_status, $new_status ) {
	$old = cmsrag_webhooks_visibility( $old_status );
	$new = cmsrag_webhooks_visibility( $new_status );
	if ( 'trash' === $new ) {
		// An auto-draft binned from the editor never existed for anyone.
		return ( 'trash' === $old || in_array( $old_status, array( 'new', 'auto-draft' ), true ) ) ? null : 'trashed';
	}
	if ( 'trash' === $old ) {
		return 'restored'; // Whatever it was restored to (WordPress >= 5.6 restores to draft by default).
	}
	if ( 'public' === $new ) {
		return 'public' === $old ? 'updated' : 'published';
	}
	if ( 'private' === $new ) {
		if ( 'public' === $old ) {
			return 'unpublished';
		}
		return 'private' === $old ? 'updated' : 'published';
	}
	return 'hidden' === $old ? null : 'unpublished';
}

/**
 * The REST base a post is known by in cmsrag ("posts", "pages", a custom type's), or null to send nothing for it.
 *
 * Sent: public post types shown in the REST API under wp/v2, the API cmsrag fetches from. Skipped: revisions,
 * autosaves, the types in CMSRAG_WEBHOOKS_SKIPPED_TYPES, non-public types and types cmsrag cannot fetch.
 * The `cmsrag_webhooks_rest_base` filter may change the answer (null skips the post).
 *
 * @param WP_Post $post A post.
 * @return string|null
 */
function cmsrag_webhooks_rest_base( $post ) {
	$base = null;
	$type = get_post_type_object( $post->post_type );
	if ( $type && $type->public && $type->show_in_rest
		&& ! in_array( $post->post_type, CMSRAG_WEBHOOKS_SKIPPED_TYPES, true )
		&& ! wp_is_post_revision( $post ) && ! wp_is_post_autosave( $post )
		&& ( empty( $type->rest_namespace ) || 'wp/v2' === $type->rest_namespace ) ) {
		$base = $type->rest_base ? (string) $type->rest_base : $type->name;
	}
	$base = apply_filters( 'cmsrag_webhooks_rest_base', $base, $post );
	return ( is_string( $base ) && '' !== $base ) ? $base : null;
}

/**
 * The webhook body for an event on a post (docs/webhooks.md: event, id, type, modified, url).
 *
 * @param WP_Post $post  The post.
 * @param string  $base  Its REST base.
 * @param string  $event The event.
 * @return array<string, string>
 */
function cmsrag_webhooks_payload( $post, $base, $event ) {
	$payload = array(
		'event' => $event,
		'id'    => $base . ':' . $post->ID,
		'type'  => $post->post_type,
	);
	// For a deletion the change happens now; otherwise it is the post's own modified time.
	$modified = 'deleted' === $event ? '' : (string) $post->post_modified_gmt;
	$time     = ( '' === $modified || '0000-00-00 00:00:00' === $modified ) ? time() : strtotime( $modified . ' UTC' );
	if ( false !== $time ) {
		$payload['modified'] = gmdate( 'Y-m-d\TH:i:s\Z', $time );
	}
	$url = get_permalink( $post );
	if ( is_string( $url ) && '' !== $url ) {
		$payload['url'] = $url;
	}
	return $payload;
}

/**
 * This request's events, by "<blog id>:<post id>" (a static, so nothing lives in a global).
 *
 * @return array<string, array{blog_id: int, payload: array<string, string>}>
 */
function &cmsrag_webhooks_pending_events() {
	static $events = array();
	return $events;
}

/**
 * Remember an event for a post, to be sent at shutdown: the last event wins, except `deleted`.
 *
 * @param WP_Post $post  The post.
 * @param string  $event The event.
 * @return void
 */
function cmsrag_webhooks_record( $post, $event ) {
	$base = cmsrag_webhooks_rest_base( $post );
	if ( null === $base ) {
		return;
	}
	$pending = &cmsrag_webhooks_pending_events();
	$key     = get_current_blog_id() . ':' . $post->ID;
	if ( isset( $pending[ $key ] ) && 'deleted' === $pending[ $key ]['payload']['event'] ) {
		return;
	}
	unset( $pending[ $key ] ); // Re-added last, so events go out in the order their posts last changed.
	$pending[ $key ] = array(
		'blog_id' => get_current_blog_id(),
		'payload' => cmsrag_webhooks_payload( $post, $base, $event ),
	);
}

/**
 * The wp_after_insert_post action: a post, its terms and meta were saved.
 *
 * @param int          $post_id     Post ID.
 * @param WP_Post      $post        The post as saved.
 * @param bool         $update      Whether an existing post was updated.
 * @param WP_Post|null $post_before The post before the save; null for a new post.
 * @return void
 */
function cmsrag_webhooks_on_after_insert_post( $post_id, $post, $update, $post_before ) {
	if ( ! $post instanceof WP_Post ) {
		return;
	}
	$old_status = $post_before instanceof WP_Post ? $post_before->post_status : 'new';
	$event      = cmsrag_webhooks_event_for_transition( $old_status, $post->post_status );
	if ( null !== $event ) {
		cmsrag_webhooks_record( $post, $event );
	}
}

/**
 * The before_delete_post action: a post is about to be deleted for good (also when the trash is emptied).
 *
 * @param int          $post_id Post ID.
 * @param WP_Post|null $post    The post (WordPress >= 5.5).
 * @return void
 */
function cmsrag_webhooks_on_before_delete_post( $post_id, $post = null ) {
	$post = $post instanceof WP_Post ? $post : get_post( $post_id );
	if ( $post instanceof WP_Post && 'auto-draft' !== $post->post_status ) {
		cmsrag_webhooks_record( $post, 'deleted' );
	}
}

/**
 * The shutdown action: send this request's events, then maybe retry a few queued ones.
 *
 * @return void
 */
function cmsrag_webhooks_on_shutdown() {
	$pending = &cmsrag_webhooks_pending_events();
	$events  = $pending;
	$pending = array();
	$healthy = true;
	$by_blog = array();
	foreach ( $events as $event ) {
		$by_blog[ $event['blog_id'] ][] = $event['payload'];
	}
	foreach ( $by_blog as $blog_id => $payloads ) {
		// A network plugin may have changed posts of another site: send with that site's settings and queue.
		$switched = is_multisite() && get_current_blog_id() !== $blog_id && switch_to_blog( $blog_id );
		$healthy  = cmsrag_webhooks_send_new( $payloads ) && $healthy;
		if ( $switched ) {
			restore_current_blog();
		}
	}
	if ( $healthy && ! wp_installing() ) {
		cmsrag_webhooks_maybe_retry_on_shutdown();
	}
}
