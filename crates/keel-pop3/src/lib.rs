//! keel-pop3 (being written)
