"""Exception reports that never show a caller's keys or our secrets."""

from __future__ import annotations

import re

from django.views.debug import SafeExceptionReporterFilter


class CallerSafeExceptionReporterFilter(SafeExceptionReporterFilter):
    # Django's list, plus the pepper and anything named like a PIN or a code.
    hidden_settings = re.compile(r"API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|PEPPER|PIN|DATABASE_URL", flags=re.I)

    def get_post_parameters(self, request):
        # Digits carries PINs, member IDs and amounts: never in a report, on any view.
        parameters = super().get_post_parameters(request)
        if request is not None and "Digits" in parameters:
            parameters = parameters.copy()
            parameters["Digits"] = self.cleansed_substitute
        return parameters
