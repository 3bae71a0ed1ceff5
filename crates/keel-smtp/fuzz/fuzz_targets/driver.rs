// The entry function of the `session` target. Shared by text inclusion with the corpus
// smoke test in `crates/keel/tests/reliability.rs`, so both run exactly this code.
//
// The first input byte chooses the chunk size the rest is fed in (as a network would cut
// it); the rest goes through the SMTP line reader, the command parser and, after a DATA
// or BDAT command, the DATA / BDAT receivers, the way the server drives them. Must never
// panic, and memory must stay bounded by the limits whatever the input.

/// Feeds `data` through the SMTP codec as a server session would.
pub(crate) fn fuzz_smtp_session(data: &[u8]) {
    use keel_smtp::codec::{
        BdatReceiver, BodyLimits, BodyProgress, DataReceiver, Line, LineReader, MAX_AUTH_LINE,
        MAX_COMMAND_LINE, Request, parse_command,
    };
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(control & 0x3f).max(1);
    let limits = BodyLimits {
        max_size: if control & 0x40 != 0 { 256 } else { 0 },
        max_line: 1000,
        lenient_lines: control & 0x80 != 0,
    };
    enum Mode {
        Commands,
        Data(DataReceiver),
        Bdat(BdatReceiver, Vec<u8>),
    }
    let mut mode = Mode::Commands;
    let mut lines = LineReader::new();
    let mut auth_next = false;
    for piece in rest.chunks(chunk) {
        let mut input = piece.to_vec();
        loop {
            match &mut mode {
                Mode::Commands => {
                    lines.push(&input);
                    input.clear();
                    let limit = if auth_next {
                        MAX_AUTH_LINE
                    } else {
                        MAX_COMMAND_LINE
                    };
                    let Some(line) = lines.next_line(limit) else {
                        break;
                    };
                    let Line::Complete(line) = line else {
                        continue;
                    };
                    if auth_next {
                        auth_next = false;
                        continue;
                    }
                    match parse_command(&line) {
                        Ok(Request::Data) => {
                            mode = Mode::Data(DataReceiver::new(limits));
                            input = lines.take_buffered();
                        }
                        Ok(Request::Bdat { chunk_size, .. }) => {
                            mode = Mode::Bdat(
                                BdatReceiver::new(chunk_size.min(1 << 16) as u64),
                                Vec::new(),
                            );
                            input = lines.take_buffered();
                        }
                        Ok(Request::Auth {
                            initial_response, ..
                        }) => auth_next = initial_response.is_empty(),
                        Ok(_) | Err(_) => {}
                    }
                }
                Mode::Data(rx) => match rx.push(&input) {
                    BodyProgress::More => break,
                    BodyProgress::Done { rest } => {
                        let Mode::Data(rx) = std::mem::replace(&mut mode, Mode::Commands) else {
                            unreachable!()
                        };
                        if let Ok(body) = rx.finish() {
                            assert!(limits.max_size == 0 || body.len() as u64 <= limits.max_size);
                        }
                        input = rest;
                    }
                },
                Mode::Bdat(rx, sink) => match rx.push(&input, Some(sink)) {
                    BodyProgress::More => break,
                    BodyProgress::Done { rest } => {
                        mode = Mode::Commands;
                        input = rest;
                    }
                },
            }
        }
    }
}
