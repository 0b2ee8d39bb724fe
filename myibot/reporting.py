"""Exception reports and log lines that never show a caller's keys, a card's token or our secrets."""

from __future__ import annotations

import logging
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


# A card's token at Stripe (a PaymentMethod, a token, a card or a source id): card data under PCI DSS.
_CARD_TOKEN = re.compile(r"\b(pm|tok|card|src)_[A-Za-z0-9]{6,}")


def without_card_tokens(text: str) -> str:
    return _CARD_TOKEN.sub(r"\1_…", text)


class CardTokensHidden(logging.Filter):
    """On the log's handler: no line, nor the traceback under it, names a card's token.

    Our own lines never carry one; a library's might (urllib3 names a request's URL in a rare warning,
    and Stripe reads a card at /v1/payment_methods/pm_...).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        hidden = without_card_tokens(message)
        if hidden != message:
            record.msg, record.args = hidden, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = without_card_tokens(logging.Formatter().formatException(record.exc_info))
        return True
