DROP TABLE identification_throttle;
