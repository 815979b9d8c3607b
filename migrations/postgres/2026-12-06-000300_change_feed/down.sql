DROP TABLE change_followers;
DROP TABLE change_log;
