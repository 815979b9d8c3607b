//! "The current version of a note" as SQL, for every query over notes: a version is current
//! when no version of the same note is higher. Kept apart so that projections can use it without
//! depending on the notebook.

use crate::db::schema::note_versions;

diesel::alias!(note_versions as newer_versions: NewerVersions);

/// Current versions joined with their note and its author, for further filters: a version is
/// current when no version of the same note is higher.
macro_rules! current_notes {
    () => {
        $crate::db::schema::note_versions::table
            .inner_join($crate::db::schema::notes::table)
            .inner_join(
                $crate::db::schema::users::table
                    .on($crate::db::schema::users::id.eq($crate::db::schema::notes::author_id)),
            )
            .filter($crate::notes::current::is_current_version!())
    };
}
pub(crate) use current_notes;

/// A filter on `note_versions`: the row is its note's current version (no later one exists).
macro_rules! is_current_version {
    () => {
        diesel::dsl::not(diesel::dsl::exists(
            $crate::notes::current::newer_versions
                .filter(
                    $crate::notes::current::newer_versions
                        .field($crate::db::schema::note_versions::note_id)
                        .eq($crate::db::schema::note_versions::note_id),
                )
                .filter(
                    $crate::notes::current::newer_versions
                        .field($crate::db::schema::note_versions::version)
                        .gt($crate::db::schema::note_versions::version),
                ),
        ))
    };
}
pub(crate) use is_current_version;
