//! keel-smtp (being written)
