"""The operators' admin: branded, with the dashboard as its index."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest
from django.template.response import TemplateResponse

from myibot import dashboard


class OperationsAdminSite(admin.AdminSite):
    site_header = "MyiBot operations"
    site_title = "MyiBot operations"
    index_title = "Dashboard"
    # There is no caller-facing site to view.
    site_url = None

    def index(self, request: HttpRequest, extra_context: dict | None = None) -> TemplateResponse:
        return super().index(request, {**dashboard.context(), **(extra_context or {})})


class OperationsAdminConfig(AdminConfig):
    default_site = "myibot.admin_site.OperationsAdminSite"
