// The entry function of the `mime` target. Shared by text inclusion with the corpus
// smoke test in `crates/keel/tests/reliability.rs`, so both run exactly this code.
//
// The first input byte chooses which entry points see the rest (a whole message, as it
// arrives over SMTP or is stored) and with which options; the rest is the message:
//
// - bits 0-1: 0 the filter (structural check, part list, part removal, Bayes tokens,
//   header view and link hosts), 1 IMAP (FETCH items, SEARCH and SORT parsing), 2 SMTP
//   (domain footer, delivery status notification returning the message), 3 all of them;
// - bit 2: tight structural limits for the filter instead of the defaults;
// - bit 3: the filter removes every other part (attachment filter);
// - bits 4-7: a part number (IMAP sections), the footer variant and the DSN options.
//
// Must never panic, whatever the message.

/// Feeds `data` through the MIME entry points Keel uses on untrusted messages.
pub(crate) fn fuzz_mime(data: &[u8]) {
    let Some((&control, raw)) = data.split_first() else {
        return;
    };
    let group = control & 3;
    let option = control >> 4;
    if group == 0 || group == 3 {
        mime_filter(raw, control & 4 != 0, control & 8 != 0, option);
    }
    if group == 1 || group == 3 {
        mime_imap(raw, option);
    }
    if group == 2 || group == 3 {
        mime_smtp(raw, option);
    }
}

/// keel-filter: what the spam rating, the attachment filter and the antivirus run.
fn mime_filter(raw: &[u8], tight: bool, remove: bool, option: u8) {
    use keel_filter::MessageLimits;
    use keel_filter::mime::{parts, parts_with, remove_parts, structure};
    let limits = if tight {
        MessageLimits {
            max_mime_depth: 3,
            max_parts: 4,
            max_header_bytes: 512,
        }
    } else {
        MessageLimits::default()
    };
    if let Ok(shape) = structure(raw, &limits) {
        assert!(shape.depth <= limits.max_mime_depth);
        assert!(shape.parts <= limits.max_parts);
    }
    let found = parts_with(raw, &limits);
    assert!(found.parts.len() <= limits.max_parts.max(1));
    if found.limit.is_some() {
        assert!(found.truncated && found.parts.len() == 1);
    }
    if remove {
        let removals: Vec<(usize, String)> = (0..found.parts.len())
            .step_by(2)
            .map(|i| (i, format!("part {i} removed\r\n=?utf-8?q?x?=")))
            .collect();
        let out = remove_parts(raw, &found, &removals);
        // The rewritten message is stored and scanned again.
        let _ = parts(&out);
    }
    let max_bytes = if option & 1 == 0 { 1 << 20 } else { 200 };
    let _ = keel_filter::bayes::tokenize(raw, max_bytes);
    let view = keel_filter::message::MessageView::new(raw, 4096);
    let _ = view.header("Subject");
    let _ = view.header("From");
    for host in keel_filter::message::link_hosts(view.scan_body(), 20) {
        let _ = keel_filter::message::uribl_candidates(&host);
    }
    let _ = view.rewrite(Some("[SPAM] "), &|name: &str, _: &str| {
        name.eq_ignore_ascii_case("X-Spam-Status")
    });
}

/// keel-imap: FETCH (ENVELOPE, BODYSTRUCTURE, sections, BINARY) and SEARCH/SORT parsing.
fn mime_imap(raw: &[u8], option: u8) {
    use keel_imap::codec::{FetchAttribute, Partial, Section, SectionText};
    let n = u32::from(option & 3) + 1;
    let path: Vec<u32> = match option >> 2 {
        0 => Vec::new(),
        1 => vec![n],
        2 => vec![n, 1],
        _ => vec![1, n, 2],
    };
    let section = |text: Option<SectionText>| FetchAttribute::BodySection {
        peek: true,
        section: Section {
            part: path.clone(),
            text,
        },
        partial: None,
    };
    let mut attrs = vec![
        FetchAttribute::Envelope,
        FetchAttribute::BodyStructure,
        FetchAttribute::Body,
        FetchAttribute::Rfc822Header,
        FetchAttribute::Rfc822Text,
        section(None),
        section(Some(SectionText::Mime)),
        section(Some(SectionText::Header)),
        section(Some(SectionText::Text)),
        section(Some(SectionText::HeaderFields(vec![
            "Subject".into(),
            "From".into(),
        ]))),
        section(Some(SectionText::HeaderFieldsNot(vec!["Received".into()]))),
        FetchAttribute::BodySection {
            peek: false,
            section: Section {
                part: path.clone(),
                text: None,
            },
            partial: Some(Partial {
                origin: u64::from(option) * 3,
                count: 17,
            }),
        },
    ];
    // BINARY answers with an error for a part it cannot decode: alone, so that error
    // does not hide the other items.
    let _ = keel_imap::server::fuzz_message(raw, &attrs);
    attrs.clear();
    attrs.push(FetchAttribute::Binary {
        peek: true,
        part: path.clone(),
        partial: None,
    });
    attrs.push(FetchAttribute::BinarySize(path));
    let _ = keel_imap::server::fuzz_message(raw, &attrs);
}

/// keel-smtp: the domain footer on outgoing mail and the DSN that returns a message.
fn mime_smtp(raw: &[u8], option: u8) {
    use keel_smtp::dsn::{DsnAction, DsnKind, DsnRecipient, DsnRequest, build};
    let (text, html) = match option & 3 {
        0 => ("-- \nSent with Keel", None),
        1 => ("Grüße — Keel", None),
        2 => ("Footer", Some("<p>Footer</p>")),
        _ => ("", Some("<b>only html</b>")),
    };
    if let Some(out) = keel_smtp::fuzz_footer(raw, text, html) {
        // The footed message is what gets stored and relayed.
        let _ = keel_filter::mime::parts(&out);
    }
    let templates = keel_smtp::settings::DsnTemplates::default();
    let (kind, action) = match (option >> 2) & 3 {
        0 => (DsnKind::Failed, DsnAction::Failed),
        1 => (DsnKind::Delayed, DsnAction::Delayed),
        2 => (DsnKind::Delivered, DsnAction::Delivered),
        _ => (DsnKind::Delivered, DsnAction::Relayed),
    };
    let report = build(&DsnRequest {
        kind,
        hostname: "mx.example.org",
        queue_id: "Q1",
        sender: "sender@example.com",
        envid: Some("env-1"),
        ret: match option & 3 {
            0 => None,
            1 => Some("FULL"),
            _ => Some("HDRS"),
        },
        original: raw,
        arrival: 1_700_000_000,
        now: 1_700_000_600,
        retry_until: Some(1_700_400_000),
        language: "en",
        templates: &templates,
        recipients: vec![DsnRecipient {
            address: "rcpt@example.net".into(),
            orcpt: Some("rfc822;rcpt@example.net".into()),
            action,
            status: "5.1.1".into(),
            remote_mta: Some("mx.example.net".into()),
            diagnostic: Some("550 5.1.1 no such user".into()),
        }],
    });
    assert!(!report.is_empty());
}
