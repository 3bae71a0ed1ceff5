//! Sender white/blacklists in the SMTP session (issue 6 §2): a blacklisted sender is
//! refused at RCPT with `550 5.7.1` for the recipients whose list (user over domain over
//! server) blocks it, with a Spam-log line; other recipients of the same message still get
//! it, and the null sender is never listed. Driven over a real socket by Python's smtplib.

mod common;

use common::TestServer;
use keel_core::log::LogKind;
use keel_filter::{ListScope, SenderLists, save_sender_lists};
use keel_smtp::SmtpSettings;

fn lists(allow: &[&str], block: &[&str]) -> SenderLists {
    SenderLists {
        allow: allow.iter().map(|s| (*s).to_owned()).collect(),
        block: block.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// Sends one message; prints `sent` with each refused recipient and its code, or
/// `refused` with the codes when every recipient was refused.
const SEND_TO: &str = r#"
def send_to(frm, rcpts):
    s = conn()
    try:
        r = s.sendmail(frm, rcpts, msg('lists'))
        out('sent', *['%s=%d' % (k, v[0]) for k, v in sorted(r.items())])
    except smtplib.SMTPRecipientsRefused as e:
        out('refused', *sorted('%s=%d' % (k, v[0]) for k, v in e.recipients.items()))
    s.quit()
"#;

#[tokio::test(flavor = "multi_thread")]
async fn blacklisted_sender_is_refused_per_recipient_with_550_5_7_1() {
    let t = TestServer::start(SmtpSettings::default()).await;
    let meta = &*t.meta;
    save_sender_lists(meta, &ListScope::Server, &lists(&[], &["*@spam.test"])).unwrap();
    save_sender_lists(
        meta,
        &ListScope::Domain("example.com".into()),
        &lists(&[], &["bad.test"]),
    )
    .unwrap();
    // carol's own list allows what the server blocks (user over domain over server).
    save_sender_lists(
        meta,
        &ListScope::User("carol@example.com".into()),
        &lists(&["*@spam.test"], &[]),
    )
    .unwrap();
    let out = t
        .py(&format!(
            "{SEND_TO}
send_to('x@spam.test', ['alice@example.com', 'carol@example.com'])
send_to('x@spam.test', ['alice@example.com'])
send_to('y@bad.test', ['dave@example.com', 'bob@other.test'])
send_to('', ['alice@example.com'])
send_to('friend@good.test', ['alice@example.com'])"
        ))
        .await;
    assert_eq!(
        out,
        [
            "sent alice@example.com=550",
            "refused alice@example.com=550",
            "sent dave@example.com=550",
            "sent",
            "sent",
        ]
    );
    // carol got the message from the blocked sender, alice did not.
    assert_eq!(t.inbox("carol@example.com").await.len(), 1);
    assert_eq!(t.inbox("alice@example.com").await.len(), 2);
    assert_eq!(t.inbox("bob@other.test").await.len(), 1);
    let spam = t.log(LogKind::Spam);
    assert!(
        spam.contains(
            "sender x@spam.test is on the server blacklist (entry '*@spam.test'), To: alice@example.com"
        ),
        "{spam}"
    );
    assert!(
        spam.contains(
            "is on the domain:example.com blacklist (entry 'bad.test'), To: dave@example.com"
        ),
        "{spam}"
    );
}
