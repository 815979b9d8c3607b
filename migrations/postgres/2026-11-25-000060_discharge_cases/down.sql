DROP TABLE discharge_events;
DROP TABLE discharge_conference_attendees;
DROP TABLE discharge_conferences;
DROP TABLE discharge_task_comments;
DROP TABLE discharge_tasks;
DROP TABLE discharge_cases;
