//! keel-mail (being written)
