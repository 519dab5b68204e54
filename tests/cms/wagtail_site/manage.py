#!/usr/bin/env python
"""Django's command-line entry point for the cmsrag test Wagtail site (run with the Wagtail venv's python)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cmsrag_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
