DROP TABLE care_team_invitations;
