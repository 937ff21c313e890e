"""The live server: MIDI ports, clocks, the bar loop, OSC control. The only package of qbdi
that touches MIDI devices, sockets, threads and clocks.

One module per stage of the paper's Figure 1 and per part:

* :mod:`~qbdi.server.ports` (real and in-memory MIDI ports), :mod:`~qbdi.server.clocks`
  (internal, manual, MIDI clock follower);
* :mod:`~qbdi.server.collector` (collect bar n), :mod:`~qbdi.server.scheduler` (play the
  answer in bar n+1), :mod:`~qbdi.server.echo` (ignore our own output coming back);
* :mod:`~qbdi.server.loop` (the :class:`~qbdi.server.loop.Server` that owns the state and
  runs the one :class:`~qbdi.improviser.Improviser` per bar);
* :mod:`~qbdi.server.osc` (the address table), :mod:`~qbdi.server.osc_transport` (UDP);
* :mod:`~qbdi.server.live_ir` (the live information-rate feed, on its own thread);
* :mod:`~qbdi.server.status` (terminal line, JSON logs), :mod:`~qbdi.server.app` (CLI glue).
"""
