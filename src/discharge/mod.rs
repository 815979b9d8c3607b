//! Discharge coordination (入退院調整): a case opened by hospital staff for an admitted patient,
//! the tasks generated from templates whose deadlines follow Japanese practice (shared/DOMAIN.md,
//! DESIGN.md §4), the discharge conference, and the notices the team is given.

pub mod cases;
pub mod conferences;
pub mod deadlines;
pub mod handlers;
pub mod notices;
pub mod tasks;
pub mod templates;

crate::text_enum! {
    /// Where a case is: `open` while the patient is in hospital, `discharged` once they have left
    /// (post-discharge tasks still running), `closed` when coordination is over, or `cancelled`
    /// (e.g. the patient was transferred or the admission turned out not to need coordination).
    CaseStatus {
        Open => "open",
        Discharged => "discharged",
        Closed => "closed",
        Cancelled => "cancelled",
    }
}

impl CaseStatus {
    /// Tasks, conferences and comments are worked on while the case is open or discharged.
    pub fn is_active(self) -> bool {
        matches!(self, CaseStatus::Open | CaseStatus::Discharged)
    }
}

crate::text_enum! {
    /// FHIR R4 Task.status, the codes a discharge task uses, with `_` for `-`.
    TaskStatus {
        Requested => "requested",
        Accepted => "accepted",
        Rejected => "rejected",
        Cancelled => "cancelled",
        InProgress => "in_progress",
        OnHold => "on_hold",
        Completed => "completed",
    }
}

impl TaskStatus {
    /// The statuses of a task still to be done.
    pub const OPEN: [TaskStatus; 4] =
        [TaskStatus::Requested, TaskStatus::Accepted, TaskStatus::InProgress, TaskStatus::OnHold];

    pub fn is_open(self) -> bool {
        Self::OPEN.contains(&self)
    }

    /// Where a task in this status may go next.
    pub fn next(self) -> Vec<TaskStatus> {
        Self::ALL.iter().copied().filter(|s| self.can_become(*s)).collect()
    }

    /// The stored text of the open statuses, for queries.
    pub fn open_codes() -> Vec<&'static str> {
        Self::OPEN.iter().map(|s| s.as_str()).collect()
    }

    /// The moves a person may make (FHIR Task's state machine, as the discharge workflow uses
    /// it): requested → accepted, rejected, cancelled or in_progress; accepted → in_progress,
    /// on_hold, completed or cancelled; in_progress → on_hold, completed or cancelled; on_hold →
    /// in_progress or cancelled. completed, cancelled and rejected are final.
    pub fn can_become(self, next: TaskStatus) -> bool {
        use TaskStatus::*;
        matches!(
            (self, next),
            (Requested, Accepted | Rejected | Cancelled | InProgress)
                | (Accepted, InProgress | OnHold | Completed | Cancelled)
                | (InProgress, OnHold | Completed | Cancelled)
                | (OnHold, InProgress | Cancelled)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::TaskStatus::{self, *};

    #[test]
    fn final_statuses_go_nowhere() {
        for from in [Completed, Cancelled, Rejected] {
            for to in TaskStatus::ALL {
                assert!(!from.can_become(*to), "{from} → {to}");
            }
        }
    }

    #[test]
    fn work_starts_from_requested_and_ends_in_completed() {
        assert!(Requested.can_become(Accepted));
        assert!(Accepted.can_become(Completed));
        assert!(InProgress.can_become(Completed));
        assert!(!Requested.can_become(Completed), "a task is accepted or started before it is done");
        assert!(!OnHold.can_become(Completed), "work resumes before it is done");
        assert!(!Requested.can_become(Requested));
    }
}
