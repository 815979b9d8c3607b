//! The ceiling: the SQL the server itself issued for a note POST and a timeline read, replayed
//! with pgbench against the same database at the same concurrency. The server's throughput as a
//! share of this is how close the HTTP service comes to what the database alone allows.
//!
//! The statements are captured, not guessed: the run script turns on `log_statement = 'all'`,
//! drives a few requests of each kind one at a time, and hands the log here. Each request is one
//! transaction on one backend process (`Db::run`), so the log splits into requests at COMMIT.
//! Ids the request minted are replaced by per-transaction values so a replay inserts new rows
//! instead of colliding with the captured ones.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::process::Command;

use serde::Serialize;

#[derive(clap::Args)]
pub struct Args {
    /// The PostgreSQL server log holding the captured statements (`log_statement = 'all'`).
    #[arg(long)]
    pub log: PathBuf,
    /// Where the capture starts in the log (its size in bytes before the captured requests).
    #[arg(long, default_value_t = 0)]
    pub from_offset: u64,
    /// The database to replay against, as a libpq URL (the same database the server used).
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    pub concurrency: Vec<u32>,
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u32,
    /// The pgbench program.
    #[arg(long, default_value = "pgbench")]
    pub pgbench: String,
    /// At most this many captured requests of each kind become replay scripts.
    #[arg(long, default_value_t = 64)]
    pub max_scripts: usize,
    /// Folder for the generated pgbench scripts.
    #[arg(long, default_value = "./data/bench/ceiling")]
    pub scripts_dir: PathBuf,
    /// Write the results here as JSON.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
    /// The server's own results (`renkei-bench load --json-out`), to print its throughput as a
    /// share of the ceiling.
    #[arg(long)]
    pub load_json: Option<PathBuf>,
}

/// One statement as the server sent it, with its parameters as SQL literals.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sql: String,
    pub params: Vec<String>,
}

/// A captured request: the statements of one transaction, in order.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    pub statements: Vec<Statement>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    NotePost,
    Timeline,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::NotePost => "note_post",
            Kind::Timeline => "timeline",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    pub scenario: &'static str,
    pub concurrency: u32,
    pub scripts: usize,
    pub statements_per_request: f64,
    pub tps: f64,
    pub latency_avg_ms: f64,
    pub failed: u64,
}

pub fn run(args: Args) -> Result<(), String> {
    let mut file = std::fs::File::open(&args.log).map_err(|e| format!("cannot open {}: {e}", args.log.display()))?;
    file.seek(SeekFrom::Start(args.from_offset)).map_err(|e| e.to_string())?;
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(|e| format!("cannot read {}: {e}", args.log.display()))?;
    let requests = split_requests(&parse_log(&text));
    std::fs::create_dir_all(&args.scripts_dir).map_err(|e| e.to_string())?;

    let mut results = Vec::new();
    for kind in [Kind::NotePost, Kind::Timeline] {
        let mine: Vec<&Captured> =
            requests.iter().filter(|r| classify(r) == Some(kind)).take(args.max_scripts).collect();
        if mine.is_empty() {
            return Err(format!("no {} request found in the captured log", kind.name()));
        }
        let mut files = Vec::new();
        for (i, r) in mine.iter().enumerate() {
            let path = args.scripts_dir.join(format!("{}-{i:03}.sql", kind.name()));
            std::fs::write(&path, to_pgbench_script(r)).map_err(|e| e.to_string())?;
            files.push(path);
        }
        let per_request = mine.iter().map(|r| r.statements.len()).sum::<usize>() as f64 / mine.len() as f64;
        println!(
            "ceiling {}: {} captured requests, {:.1} statements each, scripts in {}",
            kind.name(),
            mine.len(),
            per_request,
            args.scripts_dir.display()
        );
        for &c in &args.concurrency {
            let out = run_pgbench(&args, &files, c)?;
            println!(
                "  pgbench c={c:<3} tps={:>9.1}  latency avg={:>7.2} ms  failed={}",
                out.tps, out.latency_avg_ms, out.failed
            );
            results.push(Measured {
                scenario: kind.name(),
                concurrency: c,
                scripts: files.len(),
                statements_per_request: per_request,
                ..out
            });
        }
    }
    if let Some(path) = &args.load_json {
        print_ratios(path, &results)?;
    }
    if let Some(path) = &args.json_out {
        let json = serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?;
        std::fs::write(path, json).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// The server's closed-loop throughput next to the ceiling's, per scenario and concurrency.
fn print_ratios(load_json: &std::path::Path, ceiling: &[Measured]) -> Result<(), String> {
    let text = std::fs::read_to_string(load_json).map_err(|e| format!("cannot read {}: {e}", load_json.display()))?;
    let report: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let server_rps = |scenario: &str, c: u32| -> Option<f64> {
        report["results"].as_array()?.iter().find_map(|r| {
            (r["scenario"] == scenario && r["concurrency"] == c).then(|| r["closed"]["rps"].as_f64()).flatten()
        })
    };
    println!();
    println!("| scenario | c | server req/s | SQL ceiling tps | server / ceiling |");
    println!("|---|---:|---:|---:|---:|");
    for m in ceiling {
        if let Some(rps) = server_rps(m.scenario, m.concurrency) {
            println!(
                "| {} | {} | {:.1} | {:.1} | {:.0}% |",
                m.scenario,
                m.concurrency,
                rps,
                m.tps,
                100.0 * rps / m.tps.max(1e-9)
            );
        }
    }
    Ok(())
}

fn run_pgbench(args: &Args, files: &[PathBuf], clients: u32) -> Result<Measured, String> {
    let mut cmd = Command::new(&args.pgbench);
    // -n: no vacuum of pgbench's own tables; prepared statements, as the server's driver uses.
    cmd.args(["-n", "-M", "prepared", "-T", &args.duration_secs.to_string(), "-c", &clients.to_string()])
        .args(["-j", &clients.min(2).to_string()]);
    for f in files {
        cmd.arg("-f").arg(f);
    }
    cmd.arg(&args.database_url);
    let out = cmd.output().map_err(|e| format!("cannot run {}: {e}", args.pgbench))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("pgbench failed: {}{}", stdout, String::from_utf8_lossy(&out.stderr)));
    }
    let number_after = |label: &str| -> Option<f64> {
        let line = stdout.lines().find(|l| l.trim_start().starts_with(label))?;
        line.split('=').nth(1)?.split_whitespace().next()?.parse().ok()
    };
    Ok(Measured {
        scenario: "",
        concurrency: clients,
        scripts: files.len(),
        statements_per_request: 0.0,
        tps: number_after("tps").ok_or_else(|| format!("no tps in pgbench output: {stdout}"))?,
        latency_avg_ms: number_after("latency average").unwrap_or(0.0),
        failed: number_after("number of failed transactions").map_or(0, |n| n as u64),
    })
}

/// The statements of a PostgreSQL log (default `log_line_prefix`, `%m [%p] `), by backend pid,
/// in order.
pub fn parse_log(text: &str) -> Vec<(u32, Statement)> {
    let mut out: Vec<(u32, Statement)> = Vec::new();
    let mut last_of_pid: HashMap<u32, usize> = HashMap::new();
    // (pid, kind, text) with continuation lines (starting with a tab) joined on.
    let mut entries: Vec<(u32, String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix('\t') {
            if let Some(last) = entries.last_mut() {
                last.2.push('\n');
                last.2.push_str(rest);
            }
            continue;
        }
        let Some((pid, after)) = pid_and_rest(line) else { continue };
        let Some((level, message)) = after.split_once(":  ") else { continue };
        entries.push((pid, level.trim().to_string(), message.to_string()));
    }
    for (pid, level, message) in entries {
        match level.as_str() {
            "LOG" => {
                let sql = if let Some(sql) = message.strip_prefix("statement: ") {
                    sql
                } else if let Some(rest) = message.strip_prefix("execute ") {
                    match rest.split_once(": ") {
                        Some((_, sql)) => sql,
                        None => continue,
                    }
                } else {
                    continue;
                };
                last_of_pid.insert(pid, out.len());
                out.push((pid, Statement { sql: sql.to_string(), params: Vec::new() }));
            }
            "DETAIL" => {
                if let (Some(list), Some(&i)) = (message.strip_prefix("parameters: "), last_of_pid.get(&pid)) {
                    out[i].1.params = parse_params(list);
                }
            }
            _ => {}
        }
    }
    out
}

/// `2026-12-01 07:01:02.345 UTC [12345] LOG:  …` → (12345, "LOG:  …").
fn pid_and_rest(line: &str) -> Option<(u32, &str)> {
    let open = line.find(" [")?;
    let close = open + line[open..].find("] ")?;
    let pid = line[open + 2..close].parse().ok()?;
    Some((pid, &line[close + 2..]))
}

/// `$1 = 'a', $2 = NULL, $3 = 'it''s'` → the literals, in order, quoted as SQL.
pub fn parse_params(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = list;
    while let Some(eq) = rest.find(" = ") {
        rest = &rest[eq + 3..];
        if let Some(after) = rest.strip_prefix("NULL") {
            out.push("NULL".to_string());
            rest = after;
        } else if rest.starts_with('\'') {
            // Find the closing quote: a quote not doubled.
            let bytes = rest.as_bytes();
            let mut i = 1;
            while i < bytes.len() {
                if bytes[i] == b'\'' {
                    if bytes.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            let end = (i + 1).min(rest.len());
            out.push(rest[..end].to_string());
            rest = &rest[end..];
        } else {
            break;
        }
    }
    out
}

/// Splits each backend's statements into requests: everything up to and including a COMMIT
/// (the pool's liveness check and the transaction).
pub fn split_requests(statements: &[(u32, Statement)]) -> Vec<Captured> {
    let mut open: HashMap<u32, Captured> = HashMap::new();
    let mut done = Vec::new();
    for (pid, s) in statements {
        let current = open.entry(*pid).or_default();
        current.statements.push(s.clone());
        let upper = s.sql.trim().to_ascii_uppercase();
        if upper == "COMMIT" || upper == "ROLLBACK" {
            if let Some(r) = open.remove(pid) {
                done.push(r);
            }
        }
    }
    done
}

/// Which scenario a captured request belongs to, if any.
pub fn classify(r: &Captured) -> Option<Kind> {
    if r.statements.iter().any(|s| s.sql.starts_with("INSERT INTO \"notes\"")) {
        return Some(Kind::NotePost);
    }
    let audits_timeline = r
        .statements
        .iter()
        .any(|s| s.sql.starts_with("INSERT INTO \"audit_events\"") && s.params.iter().any(|p| p == "'timeline'"));
    audits_timeline.then_some(Kind::Timeline)
}

/// For `INSERT INTO "t" ("a", "b", "c") VALUES ($1, DEFAULT, $2)`: each column with the number
/// of the parameter it takes (none for `DEFAULT`). Nothing for another statement.
fn insert_bindings(sql: &str) -> Vec<(String, Option<usize>)> {
    if !sql.starts_with("INSERT INTO ") {
        return Vec::new();
    }
    let (Some(open), Some(values)) = (sql.find(" ("), sql.find(") VALUES (")) else { return Vec::new() };
    let columns = sql[open + 2..values].split(',').map(|c| c.trim().trim_matches('"').to_string());
    let rest = &sql[values + ") VALUES (".len()..];
    let tuple = &rest[..rest.find(')').unwrap_or(rest.len())];
    let slots = tuple.split(',').map(|v| v.trim().strip_prefix('$').and_then(|n| n.parse().ok()));
    columns.zip(slots).collect()
}

/// A pgbench script replaying one captured request. Literal ids the request minted (the `id`
/// of every row it inserted) become `:r`-based values, and audit sequence numbers `:s`-based
/// ones, so every replayed transaction inserts rows of its own.
pub fn to_pgbench_script(r: &Captured) -> String {
    let mut minted: Vec<String> = Vec::new();
    for s in &r.statements {
        for (column, slot) in insert_bindings(&s.sql) {
            let value = slot.and_then(|n| s.params.get(n.wrapping_sub(1)));
            if let Some(p) = value.filter(|p| column == "id" && *p != "NULL" && !minted.contains(p)) {
                minted.push(p.clone());
            }
        }
    }
    let mut script = String::from("\\set r random(1, 1000000000000000)\n\\set s random(1, 1000000000000000)\n");
    for s in &r.statements {
        let seq_slot = insert_bindings(&s.sql).into_iter().find(|(c, _)| c == "chain_seq").and_then(|(_, slot)| slot);
        let values: Vec<String> = s
            .params
            .iter()
            .enumerate()
            .map(|(i, p)| {
                if let Some(k) = minted.iter().position(|m| m == p) {
                    format!("(:r::text || '-{k}')")
                } else if seq_slot == Some(i + 1) {
                    format!("(:s::bigint + {i})")
                } else {
                    colon_free(p)
                }
            })
            .collect();
        let sql = substitute(&s.sql.replace('\n', " "), &values);
        script.push_str(&sql);
        script.push_str(";\n");
    }
    script
}

/// A literal pgbench will not mistake for a variable: pgbench reads `:name` anywhere in a
/// command, quotes or not, so colons are spelled as escapes in an `E''` string.
fn colon_free(literal: &str) -> String {
    if !literal.contains(':') {
        return literal.to_string();
    }
    format!("E{}", literal.replace('\\', "\\\\").replace(':', "\\x3a"))
}

/// Replaces the placeholders `$1`, `$2`, … with the given values in one pass, so a value that
/// itself contains `$2` is left alone.
fn substitute(sql: &str, values: &[String]) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '$' {
            let digits: String = sql[i + 1..].chars().take_while(char::is_ascii_digit).collect();
            if let Some(v) = digits.parse::<usize>().ok().and_then(|n| values.get(n.wrapping_sub(1))) {
                out.push_str(v);
                for _ in 0..digits.len() {
                    chars.next();
                }
                continue;
            }
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
2026-12-01 07:00:00.000 UTC [41] LOG:  statement: SELECT 1
2026-12-01 07:00:00.001 UTC [41] LOG:  statement: BEGIN
2026-12-01 07:00:00.002 UTC [42] LOG:  statement: BEGIN
2026-12-01 07:00:00.003 UTC [41] LOG:  execute __diesel_stmt_3: INSERT INTO \"notes\" (\"id\", \"patient_id\", \"kind\") VALUES ($1, $2, $3)
2026-12-01 07:00:00.003 UTC [41] DETAIL:  parameters: $1 = 'n-1', $2 = 'p-1', $3 = 'visit'
2026-12-01 07:00:00.004 UTC [41] LOG:  execute <unnamed>: INSERT INTO \"audit_events\" (\"id\", \"source_ip\", \"chain_key\", \"chain_seq\", \"resource_id\", \"detail\") VALUES ($1, DEFAULT, $2, $3, $4, $5)
2026-12-01 07:00:00.004 UTC [41] DETAIL:  parameters: $1 = 'a-1', $2 = 'p-1', $3 = '7', $4 = 'n-1', $5 = 'it''s, fine'
2026-12-01 07:00:00.005 UTC [42] LOG:  execute __diesel_stmt_9: INSERT INTO \"audit_events\" (\"id\", \"resource_type\") VALUES ($1, $2)
2026-12-01 07:00:00.005 UTC [42] DETAIL:  parameters: $1 = 'a-2', $2 = 'timeline'
2026-12-01 07:00:00.006 UTC [41] LOG:  statement: COMMIT
2026-12-01 07:00:00.007 UTC [42] LOG:  statement: COMMIT
";

    #[test]
    fn log_splits_into_requests_by_backend() {
        let requests = split_requests(&parse_log(LOG));
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0].statements.len(), 5, "the liveness check, BEGIN, two inserts, COMMIT");
        assert_eq!(requests[0].statements[3].params, ["'a-1'", "'p-1'", "'7'", "'n-1'", "'it''s, fine'"]);
        assert_eq!(classify(&requests[0]), Some(Kind::NotePost));
        assert_eq!(classify(&requests[1]), Some(Kind::Timeline));
    }

    #[test]
    fn replay_script_mints_its_own_ids() {
        let requests = split_requests(&parse_log(LOG));
        let script = to_pgbench_script(&requests[0]);
        assert!(script.contains("VALUES ((:r::text || '-0'), 'p-1', 'visit');"), "{script}");
        assert!(
            script.contains(
                "VALUES ((:r::text || '-1'), DEFAULT, 'p-1', (:s::bigint + 2), (:r::text || '-0'), 'it''s, fine');"
            ),
            "{script}"
        );
        assert!(script.starts_with("\\set r "));
        assert!(script.ends_with("COMMIT;\n"));
    }

    #[test]
    fn placeholders_replaced_once() {
        let values = ["'$2'".to_string(), "'b'".to_string()];
        assert_eq!(substitute("SELECT $1, $2 WHERE x = $1", &values), "SELECT '$2', 'b' WHERE x = '$2'");
    }

    #[test]
    fn colons_escaped_for_pgbench() {
        assert_eq!(colon_free("'2026-12-01 07:00:00'"), "E'2026-12-01 07\\x3a00\\x3a00'");
        assert_eq!(colon_free("'a\\b:c'"), "E'a\\\\b\\x3ac'");
        assert_eq!(colon_free("'plain'"), "'plain'");
    }

    #[test]
    fn params_with_nulls_and_quotes() {
        assert_eq!(parse_params("$1 = NULL, $2 = 'a'', b', $3 = ''"), ["NULL", "'a'', b'", "''"]);
    }
}
