//! User templates (guide §8.10) and the CSV import (guide §8.9) on a real store.

mod common;
use common::*;
use keel_directory::*;

fn group(d: &Directory, name: &str, domain: &str) {
    d.add_group(NewGroup {
        name: name.into(),
        domain: domain.into(),
        ..Default::default()
    })
    .unwrap();
}

fn request(csv: &str) -> ImportRequest {
    ImportRequest {
        domain: "example.com".into(),
        csv: csv.into(),
        ..Default::default()
    }
}

#[test]
fn templates_are_per_domain_or_general_and_checked() {
    let env = scenario();
    let d = &env.dir;
    group(d, "sales", "example.com");
    let t = d
        .add_user_template(UserTemplate {
            name: "Sales staff".into(),
            description: "Sales department".into(),
            domain: Some("EXAMPLE.com".into()),
            quota: Quota {
                bytes: 100 << 20,
                messages: 0,
            },
            groups: vec!["sales".into()],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(t.domain.as_deref(), Some("example.com"));
    assert_eq!(t.groups, vec!["sales@example.com"]);
    d.add_user_template(UserTemplate {
        name: "General".into(),
        ..Default::default()
    })
    .unwrap();
    // guide §8.10: only the domain's and the general templates are offered.
    let names = |dom: &str| -> Vec<String> {
        d.list_user_templates(Some(dom))
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect()
    };
    assert_eq!(names("example.com"), vec!["General", "Sales staff"]);
    assert_eq!(names("other.test"), vec!["General"]);
    // Checked: duplicate name, unknown domain or group, groups on a general template.
    for (bad, field) in [
        (
            UserTemplate {
                name: "sales STAFF".into(),
                ..Default::default()
            },
            "name",
        ),
        (
            UserTemplate {
                name: "x".into(),
                domain: Some("nowhere.test".into()),
                ..Default::default()
            },
            "domain",
        ),
        (
            UserTemplate {
                name: "y".into(),
                domain: Some("example.com".into()),
                groups: vec!["nobody".into()],
                ..Default::default()
            },
            "groups",
        ),
        (
            UserTemplate {
                name: "z".into(),
                groups: vec!["sales@example.com".into()],
                ..Default::default()
            },
            "groups",
        ),
        (UserTemplate::default(), "name"),
    ] {
        match d.add_user_template(bad.clone()) {
            Err(DirectoryError::InvalidSetting { field: f, .. }) => assert_eq!(f, field, "{bad:?}"),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    // A user made from the template, with the caller's values on top.
    let mut new = t.new_user("jo@example.com");
    new.password = Some("Jo-secret-123".into());
    let u = d.add_user_in_groups(new, &t.groups).unwrap();
    assert_eq!(u.quota.bytes, 100 << 20);
    assert_eq!(u.description, "Sales department");
    assert!(
        d.get_group("sales@example.com")
            .unwrap()
            .members
            .contains(&"jo@example.com".to_owned())
    );
    d.remove_user_template("sales staff").unwrap();
    assert!(matches!(
        d.get_user_template("Sales staff"),
        Err(DirectoryError::NoSuchTemplate(_))
    ));
}

/// guide §8.9 table 8.1, imported with a preview first: every row's problem is named,
/// nothing is written by the preview, then the selected good rows are created with their
/// addresses, groups and passwords.
#[test]
fn csv_import_previews_then_creates_the_selected_rows() {
    let env = scenario();
    let d = &env.dir;
    group(d, "sales", "example.com");
    group(d, "all", "example.com");
    let csv = "Name;Password;FullName;Description;MailAddress;Groups\n\
               jwayne;VbD66op1x;John Wayne;Developer;jwayne,duke;all\n\
               wsmith;Ahdpppu4x;Winston Smith;Sales;wsmith,smith;sales, all\n\
               amonroe;SpoiuS158;Ada Monroe;GM's Assistant;amonroe,ada.monroe;all\n\
               alice;Whatever-1;Alice Again;;;\n\
               bad name;Whatever-1;;;;\n\
               jwayne;Whatever-1;Twice;;;\n\
               psycho;pfgzInI1x;Peter Sycho;General Manager;psycho,smith;all\n\
               nogroup;Whatever-1;;;;nosuch\n\
               weak;abc;;;;\n\
               nopass;;No Password;;;\n";
    let mut req = request(csv);
    req.dry_run = true;
    let preview = d.import_users(&req).unwrap();
    assert_eq!(preview.rows.len(), 10);
    let status = |r: &ImportReport, name: &str| -> (ImportStatus, String) {
        let row = r
            .rows
            .iter()
            .find(|x| x.name == name)
            .unwrap_or_else(|| panic!("{name}"));
        (row.status, row.problem.clone())
    };
    assert_eq!(status(&preview, "jwayne").0, ImportStatus::Ready);
    assert_eq!(status(&preview, "wsmith").0, ImportStatus::Ready);
    assert!(status(&preview, "alice").1.contains("already exists"));
    assert!(
        status(&preview, "bad name")
            .1
            .contains("not a valid login name")
    );
    let twice = preview
        .rows
        .iter()
        .filter(|r| r.name == "jwayne")
        .nth(1)
        .unwrap();
    assert!(twice.problem.contains("twice"), "{twice:?}");
    assert!(status(&preview, "psycho").1.contains("smith@example.com"));
    assert!(status(&preview, "nogroup").1.contains("nosuch@example.com"));
    assert!(status(&preview, "weak").1.contains("password"));
    assert_eq!(status(&preview, "nopass").0, ImportStatus::Ready);
    assert_eq!(preview.ready, 4);
    assert_eq!(preview.errors, 6);
    assert!(
        matches!(
            d.get_user("jwayne@example.com"),
            Err(DirectoryError::NoSuchUser(_))
        ),
        "a preview writes nothing"
    );

    // Import only three of the good rows.
    let mut req = request(csv);
    req.only = Some(vec!["jwayne".into(), "WSMITH".into(), "nopass".into()]);
    let done = d.import_users(&req).unwrap();
    assert_eq!(done.created, 3, "{done:?}");
    assert_eq!(status(&done, "amonroe").0, ImportStatus::Skipped);
    let w = d.get_user("wsmith@example.com").unwrap();
    assert_eq!(w.full_name, "Winston Smith");
    assert_eq!(w.addresses, vec!["smith@example.com"]);
    assert!(w.has_password);
    assert!(
        d.authenticate(&req_imap("wsmith@example.com", "Ahdpppu4x"))
            .is_ok()
    );
    for g in ["sales@example.com", "all@example.com"] {
        assert!(
            d.get_group(g)
                .unwrap()
                .members
                .contains(&"wsmith@example.com".to_owned()),
            "{g}"
        );
    }
    assert!(!d.get_user("nopass@example.com").unwrap().has_password);
    assert!(
        serde_json::to_string(&done)
            .unwrap()
            .find("Ahdpppu4x")
            .is_none()
    );
}

fn req_imap<'a>(login: &'a str, pw: &'a str) -> AuthRequest<'a> {
    req(login, pw)
}

#[test]
fn csv_import_with_a_template_and_the_domain_user_limit() {
    let env = scenario();
    let d = &env.dir;
    group(d, "staff", "example.com");
    d.add_user_template(UserTemplate {
        name: "staff".into(),
        description: "Staff member".into(),
        domain: Some("example.com".into()),
        local_domain_only: true,
        groups: vec!["staff".into()],
        ..Default::default()
    })
    .unwrap();
    d.add_user_template(UserTemplate {
        name: "others".into(),
        domain: Some("other.test".into()),
        ..Default::default()
    })
    .unwrap();
    // example.com has 4 users; a limit of 6 leaves room for two.
    d.set_domain(
        "example.com",
        DomainPatch {
            user_limit: Some(6),
            ..Default::default()
        },
    )
    .unwrap();
    let csv = "Name,FullName,Description\nann,Ann,\nben,Ben,Own text\ncid,Cid,\n";
    let mut req = request(csv);
    req.template = Some("others".into());
    match d.import_users(&req) {
        Err(DirectoryError::InvalidSetting { field, .. }) => assert_eq!(field, "template"),
        other => panic!("{other:?}"),
    }
    req.template = Some("staff".into());
    let r = d.import_users(&req).unwrap();
    assert_eq!(r.created, 2, "{r:?}");
    assert!(r.rows[2].problem.contains("limit of 6 users"), "{r:?}");
    let ann = d.get_user("ann@example.com").unwrap();
    assert!(ann.local_domain_only);
    assert_eq!(ann.description, "Staff member");
    assert_eq!(
        d.get_user("ben@example.com").unwrap().description,
        "Own text"
    );
    assert_eq!(
        d.get_group("staff@example.com").unwrap().members,
        vec!["ann@example.com", "ben@example.com"]
    );
    // File-level problems name the csv field.
    req.csv = "FullName\nx\n".into();
    match d.import_users(&req) {
        Err(DirectoryError::InvalidSetting { field, message }) => {
            assert_eq!(field, "csv");
            assert!(message.contains("Name"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}
