"""`zoomdream live`: the dream as it grows, in a local web page, steered by its controls or by
OSC, recorded as it goes and saved as a preset that `zoomdream render` makes at full size.

controls (which numbers a page may set, from the settings' declarations) and journey (the
values over frames, and the preset they make) import no torch; dreaming runs the frame loop in
a thread, session turns the page's and OSC's messages into its changes, server and osc carry
them."""
