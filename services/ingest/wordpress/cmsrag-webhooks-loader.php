<?php
/**
 * Plugin Name: cmsrag webhooks (must-use loader)
 * Description: Loads cmsrag-webhooks/cmsrag-webhooks.php, which WordPress does not look for inside mu-plugins folders.
 *
 * @package cmsrag
 */

require_once __DIR__ . '/cmsrag-webhooks/cmsrag-webhooks.php';
