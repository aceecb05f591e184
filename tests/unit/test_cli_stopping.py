"""SIGTERM and SIGHUP inside ``stopped_by_signals`` unwind the block as SystemExit."""

from __future__ import annotations

import os
import signal
import sys
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


class _SignalledWhileFinalised:
    """Raises ``sig`` in its own ``__del__``: the handler runs inside the finaliser, where
    Python prints and drops any exception (seen: asyncio transports' and aiokafka's)."""

    def __init__(self, sig: signal.Signals) -> None:
        self.sig = sig

    def __del__(self) -> None:
        signal.raise_signal(self.sig)  # the handler runs before this call returns


@pytest.mark.parametrize("sig", STOP_SIGNALS)
def test_a_stop_raised_inside_a_finaliser_still_unwinds_the_block(sig: signal.Signals) -> None:
    lost = []
    previous_hook = sys.unraisablehook
    with pytest.raises(SystemExit) as stopped, stopped_by_signals():
        _SignalledWhileFinalised(sig)  # finalised at once: the raise is lost in __del__
        lost.append(True)  # the main thread goes on after it...
        time.sleep(10)  # ...and the signal, delivered again, stops it here at the latest
        raise AssertionError("the signal did not stop the block")
    assert stopped.value.code == 128 + sig
    assert lost == [True]
    assert sys.unraisablehook is previous_hook


def test_a_stop_swallowed_by_the_block_still_ends_it_as_stopped() -> None:
    with pytest.raises(SystemExit) as stopped, stopped_by_signals():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)
        except BaseException:  # what a careless library might do with it
            pass
    assert stopped.value.code == 128 + signal.SIGTERM


def test_a_block_that_ends_before_a_lost_stop_comes_again_still_exits_as_stopped() -> None:
    with pytest.raises(SystemExit) as stopped, stopped_by_signals():
        _SignalledWhileFinalised(signal.SIGTERM)  # lost in __del__; sent again in 50 ms
    assert stopped.value.code == 128 + signal.SIGTERM
    time.sleep(0.2)  # the second sending was cancelled with the handlers: nothing arrives
