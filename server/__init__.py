"""The live server: MIDI ports, clocks, the bar loop, OSC control. The only package of qbdi
that touches MIDI devices, sockets, threads and clocks.

One module per job:

* :mod:`~qbdi.server.ports` (the interface, real ports; :mod:`~qbdi.server.midi_input` reads
  theirs), :mod:`~qbdi.server.memory_ports` (in-memory ports), :mod:`~qbdi.server.clocks`
  (internal, manual, MIDI clock follower; :mod:`~qbdi.server.link_clock` for Link);
* the loop, as in the paper's Figure 1: :mod:`~qbdi.server.inbox` (what other threads hand
  it), :mod:`~qbdi.server.player` and :mod:`~qbdi.server.collector` (collect bar n),
  :mod:`~qbdi.server.responder` (answer it through the one improviser),
  :mod:`~qbdi.server.scheduler` (play the answer in bar n+1), :mod:`~qbdi.server.echo`
  (ignore our own output coming back, while :mod:`~qbdi.server.round_trips` shows that it
  does), and :mod:`~qbdi.server.loop` that runs them;
* control: :mod:`~qbdi.server.control` (validated changes), :mod:`~qbdi.server.osc` (the
  one address table and the routing to it,
  :mod:`~qbdi.server.osc_docs` prints it),
  :mod:`~qbdi.server.osc_transport` (UDP);
* what watches the loop, as listeners of :mod:`~qbdi.server.events`:
  :mod:`~qbdi.server.feedback` (OSC reports), :mod:`~qbdi.server.live_ir` (information
  rate, on its own thread), :mod:`~qbdi.server.take` (recording), :mod:`~qbdi.server.status`
  (plain and JSON bar logs), :mod:`~qbdi.server.view_feed` (snapshots for the live terminal
  view, :mod:`~qbdi.server.view` and :mod:`~qbdi.server.view_render`);
* output that never makes the loop wait: :mod:`~qbdi.server.logs` (writer threads),
  :mod:`~qbdi.server.bounded_log` (first few, then summaries);
* :mod:`~qbdi.server.session` assembles them; :mod:`~qbdi.server.manual` drives a loop by
  hand for tests.
"""
