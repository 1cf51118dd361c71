-- Run once by the postgres image on an empty data directory
-- (/docker-entrypoint-initdb.d). Each service owns one database on the shared
-- server and creates its schema itself: the migrations run at service start.
CREATE DATABASE userdb;
CREATE DATABASE orderdb;
CREATE DATABASE paymentdb;
