//! Live capture on network interfaces (AF_PACKET, through pnet on our own socket).
//! Not written yet.
