"""SIGTERM and SIGHUP inside ``stopped_by_signals`` unwind the block as SystemExit."""

from __future__ import annotations

import os
import signal
import time

import pytest

from stockflow.cli.stopping import STOP_SIGNALS, stopped_by_signals


@pytest.mark.parametrize("sig", STOP_SIGNALS)
def test_a_stop_signal_unwinds_the_block(sig: signal.Signals) -> None:
    before = signal.getsignal(sig)
    unwound = []
    with pytest.raises(SystemExit) as stopped, stopped_by_signals():
        try:
            os.kill(os.getpid(), sig)
            time.sleep(10)  # the handler raises here at the latest
            raise AssertionError("the signal did not stop the block")
        finally:
            unwound.append(True)
            # While it unwinds a second signal is ignored, not a second exit.
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGTERM)
    assert stopped.value.code == 128 + sig
    assert unwound == [True]
    assert signal.getsignal(sig) == before


def test_handlers_are_restored_after_a_quiet_block() -> None:
    before = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    with stopped_by_signals():
        assert all(signal.getsignal(sig) not in (before[sig], None) for sig in STOP_SIGNALS)
    assert {sig: signal.getsignal(sig) for sig in STOP_SIGNALS} == before
