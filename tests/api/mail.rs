//! E-mail through the outbox, delivered to a real SMTP server the test starts (see smtp.rs):
//! delivery right after the commit, headers that input cannot change, an SMTP outage, permanent
//! rejections, several instances on one database, and the operators' routes. Also a relay that
//! accepts connections and never answers, an instance that dies holding e-mails, and a send
//! slower than the lease.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use renkei::mail::outbox::{self, OutboxEmail};
use renkei::mail::{Notice, Severity, TaskName};
use renkei::vocab::Locale;
use serde_json::json;

use crate::helpers::{Backend, TestApp, PASSWORD};
use crate::smtp::{self, SmtpServer};

const SENDER: &str = "在宅療養連携ノート <no-reply@renkei.example.jp>";
const TASK_ID: &str = "0193a3f2-7c4e-7d2a-9b1f-3c5d7e9f1a2b";

/// A server whose outbox sends to `smtp_url`, with quick retries.
async fn app_sending_to(backend: Backend, smtp_url: &str, extra: &[(&str, &str)]) -> TestApp {
    let mut vars = vec![("RENKEI_SMTP_URL", smtp_url), ("RENKEI_MAIL_FROM", SENDER)];
    vars.extend_from_slice(extra);
    TestApp::spawn_with(backend, &vars).await
}

fn flag_raised() -> Notice {
    Notice::FlagRaised {
        severity: Severity::Emergency,
        raised_at: renkei::db::now(),
        patient: "Y.H.".into(),
        flag_id: TASK_ID.into(),
    }
}

/// Queues one e-mail to an address in its own transaction, as a producer does; its commit wakes
/// the worker. Returns the outbox id.
async fn enqueue_to(app: &TestApp, address: &str, notice: Notice) -> String {
    let email = app.mail.to_address(address, Locale::Ja, &notice).expect("e-mail");
    let id = app.db.run(move |conn| outbox::enqueue(conn, email)).await.expect("enqueue").expect("queued");
    id
}

async fn row(app: &TestApp, id: &str) -> OutboxEmail {
    let id = id.to_string();
    app.db.run(move |conn| outbox::find(conn, &id)).await.expect("read outbox").expect("outbox row")
}

/// Waits until the row has the status; panics after `timeout`.
async fn wait_for_status(app: &TestApp, id: &str, status: &str, timeout: Duration) -> OutboxEmail {
    let deadline = Instant::now() + timeout;
    loop {
        let email = row(app, id).await;
        if email.status.as_str() == status {
            return email;
        }
        assert!(Instant::now() < deadline, "e-mail {id} is still {} (wanted {status}): {email:?}", email.status);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn enqueue_delivers_within_two_seconds(backend: Backend) {
    let server = SmtpServer::start().await;
    let app = app_sending_to(backend, &server.url(), &[("RENKEI_MAIL_POLL_SECS", "30")]).await;
    let admin = app.system_admin().await;
    let org = app.organization(&admin, "visiting_nurse_station", "中原訪問看護ステーション", Some("14133")).await;
    let nurse = app.person(&admin, &org, "nurse", "member").await;

    // A producer's transaction: load the account, queue the notice, commit; then wake.
    let user_id = nurse.id.clone();
    let mailer = app.mail.clone();
    let id = app
        .db
        .run(move |conn| {
            let user = renkei::users::find(conn, &user_id)?.expect("user");
            let email = mailer.to_user(&user, &flag_raised())?.about_patient(TASK_ID);
            Ok(outbox::enqueue(conn, email)?.expect("queued"))
        })
        .await
        .unwrap();
    let committed = Instant::now();

    let received = server.wait_for(1, Duration::from_secs(2)).await;
    let latency = received[0].at - committed;
    eprintln!("commit to SMTP receipt ({backend:?}): {} ms", latency.as_millis());
    assert!(latency < Duration::from_secs(2), "took {latency:?}");
    assert_eq!(received.len(), 1);
    let m = &received[0];
    assert_eq!(m.rcpt_to, vec![nurse.email.clone()], "envelope recipients");
    assert_eq!(m.mail_from, "no-reply@renkei.example.jp");
    assert_eq!(m.header_all("To").len(), 1);
    // The address alone: a display name would be typed text.
    assert_eq!(m.header("To").unwrap().trim_matches(|c| c == '<' || c == '>'), nurse.email, "{:?}", m.header("To"));
    assert!(m.header("From").unwrap().ends_with("<no-reply@renkei.example.jp>"));
    // The Japanese subject travels encoded (RFC 2047) and decodes to the template's text.
    assert!(m.header("Subject").unwrap().is_ascii());
    assert_eq!(m.subject(), "【緊急】急変フラグが立てられました（在宅療養連携ノート）");
    // Greeted by the template's words: a name is typed text.
    assert!(m.body().starts_with("ご担当者様\n"), "{}", m.body());
    assert!(m.body().contains(&format!("{}/flags/{TASK_ID}", app.config.public_url)));

    let email = wait_for_status(&app, &id, "sent", Duration::from_secs(2)).await;
    assert_eq!(m.message_id(), email.message_id);
    assert_eq!(email.message_id, format!("<{id}@renkei.example.jp>"));
    assert_eq!(email.attempts, 1);
    assert_eq!(email.recipient_user_id.as_deref(), Some(nurse.id.as_str()));
    assert_eq!(email.patient_id.as_deref(), Some(TASK_ID));

    // An account whose language is English gets the English template.
    let res = app
        .post(
            &format!("/api/v1/organizations/{org}/users"),
            &admin.token,
            json!({ "email": "smith@example.jp", "name": "Anna Smith", "profession": "nurse", "locale": "en", "password": PASSWORD }),
        )
        .await
        .expect(201);
    let user_id = res.body["id"].as_str().unwrap().to_string();
    let mailer = app.mail.clone();
    app.db
        .run(move |conn| {
            let user = renkei::users::find(conn, &user_id)?.expect("user");
            outbox::enqueue(conn, mailer.to_user(&user, &flag_raised())?)
        })
        .await
        .unwrap();
    let received = server.wait_for(2, Duration::from_secs(2)).await;
    assert_eq!(received[1].subject(), "[Emergency] Deterioration flag raised (Renkei Note)");
    assert!(received[1].body().starts_with("Dear colleague,\n"));
    assert!(!received[1].body().contains("Anna Smith") && !received[1].header("To").unwrap().contains("Anna"));
}

async fn input_cannot_add_headers_or_recipients(backend: Backend) {
    let server = SmtpServer::start().await;
    let app = app_sending_to(backend, &server.url(), &[]).await;
    let hostile = "山田\r\nBcc: evil@example.jp\r\nSubject: 偽の件名";
    // A template's name is operators' data, yet it too stays on its own line, as text.
    let name = "退院前カンファレンス\r\nBcc: evil@example.jp\r\n\r\n.\r\n{link}";
    let notice = Notice::TaskAssigned {
        task: TaskName::Template { ja: name.into(), en: name.into() },
        due_at: None,
        patient: hostile.into(),
        task_id: TASK_ID.into(),
    };
    let id = enqueue_to(&app, "tanaka@example.jp", notice).await;
    let received = server.wait_for(1, Duration::from_secs(5)).await;
    // Give a stray second message (to evil@) the chance to show up before judging.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received_now = server.received();
    assert_eq!(received_now.len(), 1, "exactly one message");
    let m = &received[0];
    assert_eq!(m.rcpt_to, vec!["tanaka@example.jp".to_string()], "no other recipient");
    let names: Vec<String> = m.headers().into_iter().map(|(n, _)| n.to_ascii_lowercase()).collect();
    assert!(!names.contains(&"bcc".to_string()), "{names:?}");
    for name in ["from", "to", "subject", "message-id", "date"] {
        assert_eq!(names.iter().filter(|n| *n == name).count(), 1, "{name} in {names:?}");
    }
    assert!(!m.raw.split("\r\n\r\n").next().unwrap().contains("evil@example.jp"));
    assert_eq!(m.subject(), "退院調整のタスクが割り当てられました（在宅療養連携ノート）");
    assert_eq!(m.message_id(), row(&app, &id).await.message_id);
    // In the body the values stay on their own line, as text.
    let body = m.body();
    assert!(body.contains("タスク: 退院前カンファレンス  Bcc: evil@example.jp    .  {link}\n"), "{body}");
    assert!(!body.lines().any(|l| l.starts_with("Bcc:") || l.starts_with("Subject:")), "{body}");
}

async fn smtp_outage_then_every_email_arrives_once(backend: Backend) {
    let port = smtp::unused_port();
    let app = app_sending_to(backend, &smtp::url(port), &[("RENKEI_MAIL_MAX_ATTEMPTS", "30")]).await;
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..200 {
        let t = Instant::now();
        enqueue_to(&app, &format!("user{i}@example.jp"), Notice::Test).await;
        slowest = slowest.max(t.elapsed());
    }
    let enqueue_time = started.elapsed();
    eprintln!(
        "outage ({backend:?}): 200 e-mails queued in {} ms, slowest {} ms",
        enqueue_time.as_millis(),
        slowest.as_millis()
    );
    assert!(slowest < Duration::from_secs(1), "queueing slowed down to {slowest:?} while SMTP was down");

    // The worker has been failing against the closed port meanwhile.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let depth = app.db.run(outbox::depth).await.unwrap();
    assert_eq!(depth.pending, 200, "every e-mail waits while SMTP is down");
    let tried: i64 = {
        use diesel::prelude::*;
        use renkei::db::schema::email_outbox::dsl as o;
        app.db.run(|conn| Ok(o::email_outbox.filter(o::attempts.ge(1)).count().get_result::<i64>(conn)?)).await.unwrap()
    };
    eprintln!("outage ({backend:?}): {tried} of 200 e-mails had failed at least once before SMTP came up");
    assert!(tried > 0, "the worker should have tried while SMTP was down");

    let server = SmtpServer::start_on(port).await;
    let up = Instant::now();
    let received = server.wait_for(200, Duration::from_secs(15)).await;
    eprintln!("outage ({backend:?}): all 200 arrived {} ms after SMTP came up", up.elapsed().as_millis());
    // Anything sent twice would arrive shortly after.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let received_all = server.received();
    let ids: HashSet<String> = received_all.iter().map(|m| m.message_id()).collect();
    assert_eq!(received.len().max(received_all.len()), 200, "a message arrived twice");
    assert_eq!(ids.len(), 200);
    let depth = app.db.run(outbox::depth).await.unwrap();
    assert_eq!((depth.pending, depth.dead), (0, 0));
}

async fn permanent_rejection_is_dead_and_others_go_out(backend: Backend) {
    let server = SmtpServer::start().await;
    server.reject("bounce@example.jp");
    let app = app_sending_to(backend, &server.url(), &[]).await;
    let first = enqueue_to(&app, "first@example.jp", Notice::Test).await;
    let bounce = enqueue_to(&app, "bounce@example.jp", Notice::Test).await;
    let last = enqueue_to(&app, "last@example.jp", Notice::Test).await;
    let received = server.wait_for(2, Duration::from_secs(5)).await;
    let dead = wait_for_status(&app, &bounce, "dead", Duration::from_secs(5)).await;
    assert_eq!(dead.attempts, 1, "a permanent rejection is not retried");
    let error = dead.last_error.clone().unwrap_or_default();
    assert!(error.contains("550"), "{error}");
    assert!(!error.contains("bounce@example.jp"), "addresses are masked: {error}");
    wait_for_status(&app, &first, "sent", Duration::from_secs(2)).await;
    wait_for_status(&app, &last, "sent", Duration::from_secs(2)).await;
    let to: HashSet<String> = received.iter().flat_map(|m| m.rcpt_to.clone()).collect();
    assert_eq!(to, HashSet::from(["first@example.jp".to_string(), "last@example.jp".to_string()]));
}

async fn attempts_are_bounded_then_dead(backend: Backend) {
    let port = smtp::unused_port();
    let app = app_sending_to(backend, &smtp::url(port), &[("RENKEI_MAIL_MAX_ATTEMPTS", "2")]).await;
    let id = enqueue_to(&app, "nobody-listens@example.jp", Notice::Test).await;
    let dead = wait_for_status(&app, &id, "dead", Duration::from_secs(8)).await;
    assert_eq!(dead.attempts, 2);
    assert!(dead.last_error.unwrap_or_default().starts_with("gave up after 2 attempts"));
    assert!(dead.sent_at.is_none());
}

async fn two_instances_send_each_email_once(backend: Backend) {
    let server = SmtpServer::start().await;
    let url = server.url();
    let one = app_sending_to(backend, &url, &[]).await;
    let two = one.another_instance(&[("RENKEI_SMTP_URL", url.as_str()), ("RENKEI_MAIL_FROM", SENDER)]).await;
    const N: usize = 120;
    // All queued in one transaction, then both workers woken at once to race for them.
    let emails: Vec<_> = (0..N)
        .map(|i| one.mail.to_address(&format!("member{i}@example.jp"), Locale::Ja, &Notice::Test).unwrap())
        .collect();
    one.db
        .run(move |conn| {
            for email in emails {
                outbox::enqueue(conn, email)?;
            }
            Ok(())
        })
        .await
        .unwrap();
    server.wait_for(N, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let received = server.received();
    let ids: HashSet<String> = received.iter().map(|m| m.message_id()).collect();
    assert_eq!(ids.len(), N);
    assert_eq!(received.len(), N, "an e-mail was delivered twice");
    let depth = two.db.run(outbox::depth).await.unwrap();
    assert_eq!(depth.pending, 0);
}

async fn operators_see_dead_emails_and_retry_them(backend: Backend) {
    let server = SmtpServer::start().await;
    server.reject("moved@example.jp");
    let app = app_sending_to(backend, &server.url(), &[]).await;
    let admin = app.system_admin().await;
    let org = app.organization(&admin, "clinic", "幸クリニック", Some("14132")).await;
    let doctor = app.person(&admin, &org, "physician", "member").await;

    let id = enqueue_to(&app, "moved@example.jp", Notice::Test).await;
    wait_for_status(&app, &id, "dead", Duration::from_secs(5)).await;

    let res = app.get("/api/v1/outbox", &admin.token).await.expect(200);
    assert_eq!(res.body["dead"], 1);
    assert_eq!(res.body["pending"], 0);
    assert!(res.body["oldest_pending_age_secs"].is_null());
    let item = &res.body["dead_emails"]["items"][0];
    assert_eq!(item["id"], id.as_str());
    assert_eq!(item["to_address"], "moved@example.jp");
    assert_eq!(item["attempts"], 1);
    assert!(item["last_error"].as_str().unwrap().contains("550"));
    assert!(item.get("body_text").is_none() && item.get("body").is_none());
    let ready = app.call("GET", "/readyz", None, None, &[]).await.expect(200);
    assert_eq!(ready.body["outbox"]["dead"], 1);

    // Only operators.
    let res = app.get("/api/v1/outbox", &doctor.token).await.expect(403);
    assert_eq!(res.problem_type(), "/problems/forbidden");
    app.post(&format!("/api/v1/outbox/{id}/retry"), &doctor.token, json!({})).await.expect(403);

    // The address works again: retry, and it goes out.
    server.accept("moved@example.jp");
    let res = app.post(&format!("/api/v1/outbox/{id}/retry"), &admin.token, json!({})).await.expect(200);
    assert_eq!(res.body["status"], "pending");
    assert_eq!(res.body["attempts"], 0);
    let received = server.wait_for(1, Duration::from_secs(3)).await;
    assert_eq!(received[0].rcpt_to, vec!["moved@example.jp".to_string()]);
    let sent = wait_for_status(&app, &id, "sent", Duration::from_secs(2)).await;
    assert_eq!(received[0].message_id(), sent.message_id);

    // Only a dead e-mail can be retried; an unknown one is not found.
    let res = app.post(&format!("/api/v1/outbox/{id}/retry"), &admin.token, json!({})).await.expect(409);
    assert_eq!(res.problem_type(), "/problems/conflict");
    app.post(&format!("/api/v1/outbox/{}/retry", renkei::db::new_id()), &admin.token, json!({})).await.expect(404);
    let res = app.get("/api/v1/outbox", &admin.token).await.expect(200);
    assert_eq!((res.body["dead"].as_i64(), res.body["sent"].as_i64()), (Some(0), Some(1)));
}

async fn a_dedupe_key_queues_once_and_a_rollback_queues_nothing(backend: Backend) {
    let server = SmtpServer::start().await;
    let app = app_sending_to(backend, &server.url(), &[]).await;
    let mailer = app.mail.clone();
    let (first, second, third) = app
        .db
        .run(move |conn| {
            let email = mailer.to_address("lead@example.jp", Locale::Ja, &Notice::Test)?;
            let first = outbox::enqueue(conn, email.clone().once("flag:1:escalation:1"))?;
            // The duplicate neither fails nor spoils the transaction (PostgreSQL would abort it).
            let second = outbox::enqueue(conn, email.clone().once("flag:1:escalation:1"))?;
            let third = outbox::enqueue(conn, email.once("flag:1:escalation:2"))?;
            Ok((first, second, third))
        })
        .await
        .unwrap();
    assert!(first.is_some() && second.is_none() && third.is_some());

    let mailer = app.mail.clone();
    let rolled_back = app
        .db
        .run(move |conn| {
            outbox::enqueue(conn, mailer.to_address("ghost@example.jp", Locale::Ja, &Notice::Test)?)?;
            Err::<(), _>(renkei::error::AppError::conflict("", "the cause failed"))
        })
        .await;
    assert!(rolled_back.is_err());
    server.wait_for(2, Duration::from_secs(3)).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let to: Vec<String> = server.received().iter().flat_map(|m| m.rcpt_to.clone()).collect();
    assert_eq!(to, vec!["lead@example.jp".to_string(), "lead@example.jp".to_string()]);
}

/// Without `RENKEI_SMTP_URL` (development), e-mails become `.eml` files in the data folder.
async fn development_writes_eml_files(app: TestApp) {
    let id = enqueue_to(&app, "suzuki@example.jp", Notice::Test).await;
    let email = wait_for_status(&app, &id, "sent", Duration::from_secs(3)).await;
    let folder = app.data_dir.path().join("mail");
    let files: Vec<_> = std::fs::read_dir(&folder).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].extension().unwrap(), "eml");
    let raw = std::fs::read_to_string(&files[0]).unwrap();
    assert!(raw.contains(&format!("Message-ID: {}", email.message_id)), "{raw}");
    // Readable in a text editor: the Japanese body as written, not base64.
    assert!(raw.contains("Content-Transfer-Encoding: 8bit"), "{raw}");
    assert!(raw.contains("これは在宅療養連携ノートから送信したテストメールです。"), "{raw}");
}

async fn rows(app: &TestApp, ids: &[String]) -> Vec<OutboxEmail> {
    let mut out = Vec::new();
    for id in ids {
        out.push(row(app, id).await);
    }
    out
}

/// Each message once, by Message-ID; returns how many times each Message-ID arrived.
fn arrivals(server: &SmtpServer) -> std::collections::HashMap<String, usize> {
    let mut seen = std::collections::HashMap::new();
    for m in server.received() {
        *seen.entry(m.message_id()).or_insert(0) += 1;
    }
    seen
}

async fn a_silent_relay_times_out_and_every_email_arrives_once_it_answers(backend: Backend) {
    let server = SmtpServer::start().await;
    server.set_silent(true);
    let app = app_sending_to(
        backend,
        &server.url(),
        &[
            ("RENKEI_SMTP_CONNECT_TIMEOUT_SECS", "1"),
            ("RENKEI_SMTP_SEND_TIMEOUT_SECS", "1"),
            ("RENKEI_MAIL_MAX_ATTEMPTS", "30"),
        ],
    )
    .await;
    const N: usize = 12;
    let mut ids = Vec::new();
    for i in 0..N {
        ids.push(enqueue_to(&app, &format!("alert{i}@example.jp"), flag_raised()).await);
    }
    // Four at a time, each given up after 1 s: every e-mail has a failed attempt within ~3 s.
    let queued = Instant::now();
    loop {
        let now = rows(&app, &ids).await;
        if now.iter().all(|e| e.attempts >= 1) {
            for e in &now {
                assert_eq!(e.status.as_str(), "pending", "{e:?}");
                assert!(e.last_error.as_deref().unwrap_or_default().starts_with("timed out"), "{e:?}");
            }
            break;
        }
        assert!(queued.elapsed() < Duration::from_secs(8), "stuck on the silent relay: {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("silent relay ({backend:?}): every e-mail failed once within {} ms", queued.elapsed().as_millis());
    // Every attempt had a connection of its own, and the ones that timed out were closed: never
    // more open at once than the worker sends at a time.
    let (accepted, open) = server.silent_connections();
    assert!(accepted >= N, "{accepted} connections for {N} attempts");
    assert!(open <= renkei::mail::transport::CONNECTIONS as usize, "{open} silent connections kept open");
    assert!(server.received().is_empty());

    server.set_silent(false);
    let up = Instant::now();
    server.wait_for(N, Duration::from_secs(10)).await;
    eprintln!("silent relay ({backend:?}): all {N} arrived {} ms after it answered", up.elapsed().as_millis());
    for id in &ids {
        wait_for_status(&app, id, "sent", Duration::from_secs(3)).await;
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let seen = arrivals(&server);
    assert_eq!(seen.len(), N);
    assert!(seen.values().all(|n| *n == 1), "an e-mail arrived twice: {seen:?}");
    for e in rows(&app, &ids).await {
        assert_eq!(seen.get(&e.message_id), Some(&1), "{e:?}");
    }
    // Attempts still stuck on silent connections when it recovered were closed too.
    let deadline = Instant::now() + Duration::from_secs(3);
    while server.silent_connections().1 > 0 {
        assert!(Instant::now() < deadline, "silent connections left open: {:?}", server.silent_connections());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_dead_instances_emails_are_taken_over_after_a_short_lease(backend: Backend) {
    use renkei::mail::transport::{Delivery, Timeouts, Transport};
    let server = SmtpServer::start().await;
    let app = app_sending_to(backend, &server.url(), &[("RENKEI_MAIL_LEASE_SECS", "2")]).await;
    // An instance of the same configuration claims five e-mails as its worker does, then dies.
    const DEAD: &str = "dead-host/4242/0123456789ab";
    const N: usize = 5;
    let lease = renkei::mail::worker::Settings::from_config(&app.config);
    let emails: Vec<_> = (0..N)
        .map(|i| app.mail.to_address(&format!("physician{i}@example.jp"), Locale::Ja, &flag_raised()).unwrap())
        .collect();
    let claimed = app
        .db
        .run(move |conn| {
            for email in emails {
                outbox::enqueue(conn, email)?;
            }
            let now = renkei::db::now();
            outbox::claim(conn, DEAD, now, lease.lease_end(now), 100)
        })
        .await
        .unwrap();
    let claimed_at = Instant::now();
    assert_eq!(claimed.len(), N);
    assert!(claimed.iter().all(|e| e.claimed_by.as_deref() == Some(DEAD)));
    let ids: Vec<String> = claimed.iter().map(|e| e.id.clone()).collect();
    // Before it died it had handed the first one to the mail server, but not recorded that.
    let timeouts = Timeouts { connect: Duration::from_secs(1), send: Duration::from_secs(2) };
    let dead = Transport::from_config(&renkei::config::MailTransport::Smtp(server.url()), timeouts).unwrap();
    let from: lettre::message::Mailbox = SENDER.parse().unwrap();
    assert_eq!(dead.send(&from, &claimed[0]).await, Delivery::Sent);

    // Under its lease nobody else sends them.
    tokio::time::sleep(Duration::from_millis(800)).await;
    for e in rows(&app, &ids).await {
        assert_eq!((e.status.as_str(), e.attempts, e.claimed_by.as_deref()), ("pending", 0, Some(DEAD)), "{e:?}");
    }
    assert_eq!(server.received().len(), 1);

    // Once the lease has run out, the live instance takes them over at its next poll.
    for id in &ids {
        wait_for_status(&app, id, "sent", Duration::from_secs(6)).await;
    }
    let taken_over = claimed_at.elapsed();
    eprintln!("dead instance ({backend:?}): its e-mails went out {} ms after its claim", taken_over.as_millis());
    assert!(taken_over < Duration::from_secs(5), "{taken_over:?}");
    for e in rows(&app, &ids).await {
        assert_eq!(e.sent_by.as_deref(), Some(app.mail.instance_id()), "{e:?}");
        assert_eq!((e.attempts, e.claimed_by.as_deref(), e.locked_until), (1, None, None), "{e:?}");
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // Exactly once each, apart from the one the dead instance had sent: that one twice, with the
    // same Message-ID, so the receiver can tell it is a duplicate.
    let seen = arrivals(&server);
    assert_eq!(server.received().len(), N + 1);
    assert_eq!(seen.len(), N);
    assert_eq!(seen.get(&claimed[0].message_id), Some(&2), "{seen:?}");
    for e in &claimed[1..] {
        assert_eq!(seen.get(&e.message_id), Some(&1), "{seen:?}");
    }
}

async fn a_send_slower_than_the_lease_is_not_taken_over(backend: Backend) {
    let server = SmtpServer::start().await;
    // The reply to each message takes twice the lease (well within the send timeout).
    server.delay_replies(Duration::from_secs(4));
    let url = server.url();
    let settings = [
        ("RENKEI_SMTP_URL", url.as_str()),
        ("RENKEI_MAIL_FROM", SENDER),
        ("RENKEI_MAIL_LEASE_SECS", "2"),
        ("RENKEI_SMTP_SEND_TIMEOUT_SECS", "10"),
    ];
    let one = TestApp::spawn_with(backend, &settings).await;
    let two = one.another_instance(&settings).await;
    const N: usize = 4;
    let emails: Vec<_> = (0..N)
        .map(|i| one.mail.to_address(&format!("nurse{i}@example.jp"), Locale::Ja, &Notice::Test).unwrap())
        .collect();
    let ids = one
        .db
        .run(move |conn| {
            let mut ids = Vec::new();
            for email in emails {
                ids.push(outbox::enqueue(conn, email)?.expect("queued"));
            }
            Ok(ids)
        })
        .await
        .unwrap();
    // One instance takes them; the other polls every second meanwhile.
    for id in &ids {
        wait_for_status(&one, id, "sent", Duration::from_secs(12)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let seen = arrivals(&server);
    assert_eq!(server.received().len(), N, "an e-mail was sent twice: {seen:?}");
    assert_eq!(seen.len(), N);
    let instances = [one.mail.instance_id(), two.mail.instance_id()];
    for e in rows(&one, &ids).await {
        assert_eq!(e.attempts, 1, "{e:?}");
        assert!(instances.contains(&e.sent_by.as_deref().unwrap_or_default()), "{e:?}");
    }
}

crate::both_backends!(development_writes_eml_files);

crate::both_backends!(
    by_backend: enqueue_delivers_within_two_seconds,
    input_cannot_add_headers_or_recipients,
    smtp_outage_then_every_email_arrives_once,
    permanent_rejection_is_dead_and_others_go_out,
    attempts_are_bounded_then_dead,
    two_instances_send_each_email_once,
    operators_see_dead_emails_and_retry_them,
    a_dedupe_key_queues_once_and_a_rollback_queues_nothing,
    a_silent_relay_times_out_and_every_email_arrives_once_it_answers,
    a_dead_instances_emails_are_taken_over_after_a_short_lease,
    a_send_slower_than_the_lease_is_not_taken_over,
);
