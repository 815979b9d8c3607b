//! Discharge task templates: the tasks a discharge-coordination case is made of, the role on the
//! case's care team that does each (and the profession older clients read), and the deadline rule
//! it follows.
//!
//! They are rows of `discharge_task_templates`, seeded by the migration
//! `2026-11-25-000030_discharge_templates` from the discharge-coordination table of
//! shared/DOMAIN.md (2024 fee revision: 入院時情報連携加算, 入退院支援加算, 退院時共同指導料,
//! 退院・退所加算, 訪問看護指示料, 特別訪問看護指示加算, and common practice). They are data, not
//! code: a city adjusts a deadline, adds a task or retires one (`active = FALSE`) without a release.

use diesel::prelude::*;
use serde::Serialize;

use crate::db::schema::discharge_task_templates;
use crate::db::DbConn;
use crate::discharge::deadlines::TemplateRule;
pub use crate::discharge::deadlines::{Anchor, DueRule};
use crate::error::AppResult;
use crate::vocab::{Profession, TeamRole};

/// One row of `discharge_task_templates`. An unknown value in a vocabulary column (a row edited
/// by hand) is a load error, reported rather than guessed at.
#[derive(Queryable, Selectable, Serialize, Debug, Clone)]
#[diesel(table_name = discharge_task_templates)]
pub struct Template {
    pub key: String,
    /// Japanese title, as people in Japanese practice name the task.
    pub title: String,
    pub title_en: String,
    pub profession: Profession,
    pub anchor: Anchor,
    pub offset_days: i32,
    pub due_rule: DueRule,
    pub business_hours_rule: bool,
    /// The fee (加算, 指導料) or practice the deadline comes from.
    pub source: String,
    pub note: Option<String>,
    pub sort_order: i32,
    pub active: bool,
    /// The role on the case's care team that does the task (`crate::discharge::routing`).
    pub team_role: TeamRole,
}

impl Template {
    /// The deadline rule, for [`crate::discharge::deadlines::due_at`].
    pub fn rule(&self) -> TemplateRule {
        TemplateRule {
            anchor: self.anchor,
            offset_days: self.offset_days,
            due_rule: self.due_rule,
            business_hours_rule: self.business_hours_rule,
        }
    }
}

/// One template by key, retired or not (a task keeps the template it was made from).
pub fn find(conn: &mut DbConn, key: &str) -> AppResult<Option<Template>> {
    Ok(discharge_task_templates::table
        .filter(discharge_task_templates::key.eq(key))
        .select(Template::as_select())
        .first(conn)
        .optional()?)
}

/// The templates a new case is built from, in the order a person reads them.
pub fn active_templates(conn: &mut DbConn) -> AppResult<Vec<Template>> {
    Ok(discharge_task_templates::table
        .filter(discharge_task_templates::active.eq(true))
        // The key breaks ties, so that two rows a city gave the same sort_order keep one order.
        .order((discharge_task_templates::sort_order.asc(), discharge_task_templates::key.asc()))
        .select(Template::as_select())
        .load(conn)?)
}

/// Every template, retired variants included, in the same order (for `GET /discharge-task-templates`).
pub fn all_templates(conn: &mut DbConn) -> AppResult<Vec<Template>> {
    Ok(discharge_task_templates::table
        .order((discharge_task_templates::sort_order.asc(), discharge_task_templates::key.asc()))
        .select(Template::as_select())
        .load(conn)?)
}
