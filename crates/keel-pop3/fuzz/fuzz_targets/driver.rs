// The entry function of the `session` target. Shared by text inclusion with the corpus
// smoke test in `crates/keel/tests/reliability.rs`, so both run exactly this code.
//
// The first input byte chooses the chunk size; the rest goes through the POP3 line
// reader and command parser, and after `AUTH mech` without an initial response the next
// line goes to the SASL response decoder, as the server drives them. Every parsed command
// and every error response is also serialised. Must never panic.

/// Feeds `data` through the POP3 codec as a server session would.
pub(crate) fn fuzz_pop3_session(data: &[u8]) {
    use keel_pop3::codec::{
        Command, LineReader, MAX_COMMAND_LINE, MAX_SASL_LINE, Response, parse_command,
        parse_initial_response, parse_sasl_response, top_of, write_message_body,
    };
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(control & 0x7f).max(1);
    let mut lines = LineReader::new();
    let mut sasl = false;
    for piece in rest.chunks(chunk) {
        lines.push(piece);
        while let Some(line) = lines.next_line(if sasl {
            MAX_SASL_LINE
        } else {
            MAX_COMMAND_LINE
        }) {
            let line = match line {
                Ok(l) => l,
                Err(e) => {
                    let _ = Response::err(e.to_string()).to_bytes();
                    continue;
                }
            };
            if std::mem::take(&mut sasl) {
                let _ = parse_sasl_response(&line);
                continue;
            }
            match parse_command(&line) {
                Ok(Command::Auth {
                    mechanism: Some(_),
                    initial: None,
                }) => sasl = true,
                Ok(Command::Auth {
                    initial: Some(ir), ..
                }) => {
                    let _ = parse_initial_response(&ir);
                }
                Ok(Command::Top { lines: n, .. }) => {
                    let mut out = Vec::new();
                    write_message_body(&mut out, top_of(&line, n));
                }
                Ok(cmd) => {
                    let _ = format!("{cmd:?} {}", cmd.keyword());
                }
                Err(e) => {
                    let _ = Response::err(format!("{e:?}")).to_bytes();
                }
            }
        }
    }
}
