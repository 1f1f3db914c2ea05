//! Colour conversion, scaling and H.264 encoding. OWNED BY THE VIDEO HELPER: replace this stub.
