//! Screen capture from an X11 server. OWNED BY THE CAPTURE HELPER: replace this stub.
