DROP TABLE unread_by_patient;
