// The entry function of the `receiver` target. Shared by text inclusion with the corpus
// smoke test in `crates/keel/tests/reliability.rs`, so both run exactly this code.
//
// The first input byte chooses the limits (bit 0: tight ones), UTF-8 mode (bit 1) and the
// chunk size the rest is fed in (bits 2-7, as a network would cut it); the rest goes
// through the IMAP command receiver, which switches to SASL and IDLE modes as a server
// would, and every error response is encoded. Must never panic.

/// Feeds `data` to the IMAP command receiver as a server session would.
pub(crate) fn fuzz_imap_receiver(data: &[u8]) {
    use keel_imap::codec::{CommandBody, EncodeOptions, Event, Limits, Receiver, Response};
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let limits = if control & 1 == 0 {
        Limits::default()
    } else {
        Limits {
            max_line: 128,
            max_literal: 64,
            max_command_literals: 96,
            max_depth: 6,
            max_sequence_ranges: 8,
        }
    };
    let mut rx = Receiver::new(limits);
    rx.set_utf8(control & 2 != 0);
    let chunk = usize::from(control >> 2).max(1);
    for piece in rest.chunks(chunk) {
        rx.feed(piece);
        loop {
            match rx.next() {
                Ok(Some(Event::Command(cmd))) => match cmd.body {
                    CommandBody::Idle => rx.expect_idle_done(),
                    CommandBody::Authenticate { .. } => rx.expect_sasl_line(),
                    _ => {}
                },
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    let _ = Response::from(e.to_response()).to_bytes(&EncodeOptions::default());
                }
            }
        }
    }
    let _ = rx.finish();
}
