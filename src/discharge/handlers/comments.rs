//! `/tasks/{id}/comments`: a comment on a discharge task.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::created;
use crate::access::{self, Need};
use crate::api::{Check, Id, Json};
use crate::audit::{self, Action, Event, Resource};
use crate::auth::Bearer;
use crate::db::{new_id, now};
use crate::discharge::tasks::{self, Comment};
use crate::discharge::workflow::require_active;
use crate::error::AppResult;
use crate::idempotency::{self, Answer};
use crate::state::AppState;

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewComment {
    pub text: String,
}

/// `POST /tasks/{id}/comments`: a comment, shown in the task. Offline-safe with
/// `Idempotency-Key`.
pub async fn add_comment(
    state: web::Data<AppState>,
    bearer: Bearer,
    req: HttpRequest,
    path: web::Path<Id>,
    body: Json<NewComment>,
) -> AppResult<HttpResponse> {
    let task_id = path.into_inner().into_string();
    let key = idempotency::key_from(&req)?;
    let body = body.into_inner();
    let fingerprint = idempotency::fingerprint("POST", req.path(), &body);
    let mut check = Check::new();
    check.text("text", &body.text, 2000);
    check.finish()?;
    let location = format!("/api/v1/tasks/{task_id}");
    let answer = state
        .db
        .run(move |conn| {
            let me = bearer.user(conn)?;
            let (task, case) = access::task(conn, &me, &task_id, Need::Write)?;
            let answer = idempotency::once(conn, &me.id, key.as_deref(), &fingerprint, |conn| {
                require_active(&case)?;
                let comment = Comment {
                    id: new_id(),
                    task_id: task.id.clone(),
                    patient_id: task.patient_id.clone(),
                    author_id: me.id.clone(),
                    text: body.text,
                    created_at: now(),
                };
                tasks::insert_comment(conn, &comment)?;
                audit::record(
                    conn,
                    &me,
                    Event::new(
                        Action::Create,
                        Resource::DischargeTaskComment,
                        Some(&comment.id),
                        Some(&task.patient_id),
                    ),
                )?;
                Answer::json(StatusCode::CREATED, &tasks::comment_view(conn, &comment)?)
            })?;
            answer.audit_replay(conn, &me, Resource::DischargeTaskComment, &task.patient_id)?;
            Ok(answer)
        })
        .await?;
    Ok(created(answer, location))
}
