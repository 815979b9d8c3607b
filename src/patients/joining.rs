//! Answering a care-team invitation with its e-mailed token, for the API and the console alike:
//! the access policy finds the invitation the caller may answer, it is settled once, and an
//! accepted one makes the membership.

use super::invitations::{self, Invitation, InvitationView};
use super::team::MemberView;
use crate::access;
use crate::auth::CurrentUser;
use crate::db::DbConn;
use crate::error::AppResult;
use crate::mail::Mailer;
use crate::vocab::InvitationStatus;

/// The invitation the caller may answer, as it stands (to show before answering).
pub fn addressed_to_me(conn: &mut DbConn, me: &CurrentUser, token: &str) -> AppResult<Invitation> {
    Ok(access::invitation_response(conn, me, token)?.0)
}

/// The caller joins the team as the invitation says.
pub fn accept(conn: &mut DbConn, me: &CurrentUser, mailer: &Mailer, token: &str) -> AppResult<MemberView> {
    let (invitation, patient) = access::invitation_response(conn, me, token)?;
    invitations::settle(conn, me, &invitation, InvitationStatus::Accepted)?;
    let user = access::joining(conn, me, &patient, &invitation)?;
    invitations::accept(conn, me, mailer, &patient, &user, &invitation)
}

pub fn decline(conn: &mut DbConn, me: &CurrentUser, token: &str) -> AppResult<InvitationView> {
    let (invitation, _) = access::invitation_response(conn, me, token)?;
    invitations::decline(conn, me, &invitation)
}
