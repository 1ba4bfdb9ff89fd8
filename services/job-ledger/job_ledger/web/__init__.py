"""The ledger's HTTP face: the JSON history API (Bearer token) and the admin pages (session)."""

from job_ledger.web.app import create_app

__all__ = ["create_app"]
