//! Virtual display (Xvfb) management. OWNED BY THE CAPTURE HELPER: replace this stub.
