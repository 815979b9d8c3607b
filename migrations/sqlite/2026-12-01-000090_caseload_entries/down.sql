DROP TABLE caseload_entries;
