"""Sending money: amount, recipient, confirmation, then the confirmation code."""

from __future__ import annotations

import re

from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts import errors, ledger, selectors
from accounts.spoken import spoken_amount, spoken_digits, spoken_dollars
from ivr.machine import MAIN_MENU, Again, Goto, Line, Outcome, Step, step
from ivr.models import CallSession
from ivr.steps.common import (
    NOT_VERIFIED,
    NOTHING_SENT,
    SIX_DIGITS,
    MenuPrompt,
    Option,
    ReadCode,
    cannot_send_owed,
    held_refusal,
    keep_code,
)
from myibot.db import Question
from payments import holds

NOT_ENOUGH_MONEY = gettext_lazy("You do not have enough money.")


@step
class SendAmount(Step):
    name = "send_amount"
    keys = re.compile(r"[0-9]{1,4}", re.ASCII)
    wrong_keys = gettext_lazy("For example, for 20 dollars, enter 2 and 0, then press pound.")
    help = gettext_lazy(
        "Enter the amount in whole dollars, then press pound. For example, for 20 dollars, enter 2 and 0, "
        "then press pound."
    )
    abandoned = NOTHING_SENT
    finish_on_key = "#"

    def prompt(self, call: CallSession) -> list[Line]:
        return [_("How many dollars would you like to send? Enter the amount in whole dollars, then press pound.")]

    def read_with_call(self, entry: str | None) -> tuple[Question, ...]:
        return (holds.AMOUNT_CHECK,) if entry and self.keys.fullmatch(entry) else ()

    def answer(self, call: CallSession, keys: str) -> Outcome:
        amount_cents = int(keys) * 100
        now = timezone.now()
        # What is held and today's room: read with the call (read_with_call), checked here in order.
        held_now, room_cents = call.asked(holds.AMOUNT_CHECK, now=now)
        try:
            ledger.transfer_check(
                account=call.account, amount_cents=amount_cents, now=now, held_now=held_now, room_cents=room_cents
            )
        except errors.AccountNotVerified:
            return Goto(MAIN_MENU, NOT_VERIFIED)
        except errors.MoneyOwed as refusal:
            return Goto(MAIN_MENU, cannot_send_owed(refusal.owed_cents))
        except errors.MoneyHeld as refusal:
            if not refusal.sendable_cents:
                return Goto(MAIN_MENU, held_refusal(refusal))
            return Again(held_refusal(refusal), strike=False)
        except errors.InvalidAmount:
            return Again(_("The amount must be at least 1 dollar."), strike=False)
        except errors.TransferLimitExceeded as refusal:
            return Again(
                _("The most you can send at one time is %(amount)s.") % {"amount": spoken_dollars(refusal.limit_cents)},
                strike=False,
            )
        except errors.DailyLimitReached as refusal:
            if not refusal.room_cents:
                return Goto(
                    MAIN_MENU,
                    _("You have reached today's limit of %(amount)s. You can send money again tomorrow.")
                    % {"amount": spoken_dollars(refusal.limit_cents)},
                )
            return Again(
                _("The most you can still send today is %(amount)s.") % {"amount": spoken_dollars(refusal.room_cents)},
                strike=False,
            )
        except errors.InsufficientFunds:
            return Again(
                f"{NOT_ENOUGH_MONEY} "
                + _("Your balance is %(amount)s.") % {"amount": spoken_amount(call.account.balance_cents)},
                strike=False,
            )
        call.scratch = {"amount_cents": amount_cents}
        return Goto(SendRecipient)


@step
class SendRecipient(Step):
    name = "send_recipient"
    keys = SIX_DIGITS
    wrong_keys = gettext_lazy("A recipient code has 6 digits.")
    help = gettext_lazy("Staff give you a 6-digit code for each person you can send money to. Enter that code.")
    abandoned = NOTHING_SENT
    num_digits = 6

    def prompt(self, call: CallSession) -> list[Line]:
        return [_("Enter the 6-digit code of the person you are sending to.")]

    def read_with_call(self, entry: str | None) -> tuple[Question, ...]:
        return (selectors.RECIPIENT,) if entry and self.keys.fullmatch(entry) else ()

    def answer(self, call: CallSession, keys: str) -> Outcome:
        recipient = call.asked(selectors.RECIPIENT, entry=keys)  # read with the call (read_with_call)
        if recipient is None:
            return Again(_("We could not find that recipient code."), strike=False)
        call.scratch.update(recipient_code=recipient.code, recipient_name=recipient.name)
        return Goto(SendConfirm)


def send_now(call: CallSession) -> Outcome:
    """1 at the confirmation: the transfer is submitted, and its code read for writing down."""
    try:
        receipt = ledger.transfer_submit(
            account=call.account,
            recipient_code=call.scratch["recipient_code"],
            amount_cents=call.scratch["amount_cents"],
            # This prompt of this call's state: a retried confirmation finds
            # its transfer, and a call whose state was lost and made anew
            # (a new row) cannot collide with a transfer made before.
            idempotency_key=f"{call.call_sid}:{call.pk}:{call.prompt_number}",
        )
    except errors.AccountNotVerified:
        call.scratch = {}
        return Goto(MAIN_MENU, NOT_VERIFIED)
    except errors.MoneyOwed as refusal:
        call.scratch = {}
        return Goto(MAIN_MENU, f"{cannot_send_owed(refusal.owed_cents)} {NOTHING_SENT}")
    except errors.MoneyHeld as refusal:
        # Card money arrived between the amount and the confirmation, or its hold was found under the lock.
        call.scratch = {}
        return Goto(MAIN_MENU, f"{held_refusal(refusal)} {NOTHING_SENT}")
    except errors.InsufficientFunds:
        call.scratch = {}
        return Goto(MAIN_MENU, f"{NOT_ENOUGH_MONEY} {NOTHING_SENT}")
    except errors.UnknownRecipient:
        call.scratch = {}
        return Goto(MAIN_MENU, f"{_('That recipient can no longer receive money.')} {NOTHING_SENT}")
    except errors.IdempotencyConflict:
        call.scratch = {}
        return Goto(MAIN_MENU, f"{_('That transfer could not be made.')} {NOTHING_SENT}")
    except errors.DailyLimitReached:
        call.scratch = {}
        return Goto(MAIN_MENU, f"{_('That is more than you can still send today.')} {NOTHING_SENT}")
    except (errors.TransferLimitExceeded, errors.InvalidAmount):
        call.scratch = {}
        return Goto(MAIN_MENU, f"{_('That amount cannot be sent.')} {NOTHING_SENT}")
    if receipt.code is None:
        call.scratch = {}
        return Goto(MAIN_MENU, _("This transfer was already submitted."))
    sent = _("Your transfer of %(amount)s to %(name)s is submitted.") % {
        "amount": spoken_dollars(receipt.transfer.amount_cents),
        "name": call.scratch["recipient_name"],
    }
    keep_code(call, receipt.code)
    return Goto(SendCode, sent)


def cancel_sending(call: CallSession) -> Outcome:
    call.scratch = {}
    return Goto(MAIN_MENU, _("Cancelled. No money was sent."))


@step
class SendConfirm(MenuPrompt):
    name = "send_confirm"
    says_digits = True  # the recipient's code
    help = gettext_lazy("Press 1 to send this money now, or 2 to cancel.")
    abandoned = NOTHING_SENT
    in_one_sentence = True
    options = (
        # Only the key that sends holds the call locked: a retry of it waits for the transfer, and finds it.
        Option("1", gettext_lazy("To confirm, press 1."), send_now, locks_call=True),
        Option("2", gettext_lazy("To cancel, press 2."), cancel_sending),
    )

    def prompt(self, call: CallSession) -> list[Line]:
        return [
            _("You are sending %(amount)s to %(name)s, recipient code %(code)s.")
            % {
                "amount": spoken_dollars(call.scratch["amount_cents"]),
                "name": call.scratch["recipient_name"],
                "code": spoken_digits(call.scratch["recipient_code"]),
            },
            *self.offers(call),
        ]


@step
class SendCode(ReadCode):
    name = "send_code"
    help = gettext_lazy("This code shows your transfer was made. Press 1 to hear it again, or 2 for the main menu.")
    heading = gettext_lazy("Your confirmation code is:")
