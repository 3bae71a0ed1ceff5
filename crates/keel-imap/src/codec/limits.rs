//! Named limits of the command receiver.

/// Limits the [`Receiver`](super::Receiver) enforces on peer input.
///
/// All limits are checked before the corresponding memory is committed.
/// RFC 9051 §4 leaves line and literal lengths to the implementation; RFC 7162
/// §4 recommends servers accept lines of at least 8192 octets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest command line in bytes, excluding literal data but including the
    /// CRLF. A longer line is discarded up to its LF. Default [`Limits::DEFAULT_MAX_LINE`].
    pub max_line: usize,
    /// Largest single literal (`{N}`, `{N+}`, `~{N}`) in bytes. Default
    /// [`Limits::DEFAULT_MAX_LITERAL`]; this is also the APPENDLIMIT (RFC 7889)
    /// the server should advertise.
    pub max_literal: u64,
    /// Largest total of all literals in one command (MULTIAPPEND, RFC 3502, can
    /// send several). Default [`Limits::DEFAULT_MAX_COMMAND_LITERALS`].
    pub max_command_literals: u64,
    /// Deepest nesting of parenthesised lists (SEARCH keys, FETCH attributes,
    /// ...). Default [`Limits::DEFAULT_MAX_DEPTH`].
    pub max_depth: usize,
    /// Most ranges/numbers in one sequence set. Default
    /// [`Limits::DEFAULT_MAX_SEQUENCE_RANGES`].
    pub max_sequence_ranges: usize,
}

impl Limits {
    /// Default [`Limits::max_line`]: 64 KiB.
    pub const DEFAULT_MAX_LINE: usize = 64 * 1024;
    /// Default [`Limits::max_literal`]: 64 MiB.
    pub const DEFAULT_MAX_LITERAL: u64 = 64 * 1024 * 1024;
    /// Default [`Limits::max_command_literals`]: 128 MiB.
    pub const DEFAULT_MAX_COMMAND_LITERALS: u64 = 128 * 1024 * 1024;
    /// Default [`Limits::max_depth`]: 32.
    pub const DEFAULT_MAX_DEPTH: usize = 32;
    /// Default [`Limits::max_sequence_ranges`]: 10,000.
    pub const DEFAULT_MAX_SEQUENCE_RANGES: usize = 10_000;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_line: Self::DEFAULT_MAX_LINE,
            max_literal: Self::DEFAULT_MAX_LITERAL,
            max_command_literals: Self::DEFAULT_MAX_COMMAND_LITERALS,
            max_depth: Self::DEFAULT_MAX_DEPTH,
            max_sequence_ranges: Self::DEFAULT_MAX_SEQUENCE_RANGES,
        }
    }
}
