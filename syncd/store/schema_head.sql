-- syncd state schema at revision 0007
CREATE TABLE alembic_version (
	version_num VARCHAR(32) NOT NULL, 
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
CREATE TABLE audit (
	id INTEGER NOT NULL, 
	at DATETIME NOT NULL, 
	action VARCHAR(32) NOT NULL, 
	folder TEXT, 
	rel_path TEXT, 
	sha256 VARCHAR(64), 
	file_id VARCHAR(128), 
	bytes BIGINT, 
	detail TEXT, 
	CONSTRAINT pk_audit PRIMARY KEY (id)
);
CREATE TABLE job_results (
	id INTEGER NOT NULL, 
	folder TEXT NOT NULL, 
	rel_path TEXT NOT NULL, 
	sha256 VARCHAR(64) NOT NULL, 
	job_key VARCHAR(64) NOT NULL, 
	state VARCHAR(16) NOT NULL, 
	created_at DATETIME NOT NULL, 
	written_at DATETIME, 
	beside BOOLEAN DEFAULT 0 NOT NULL, 
	CONSTRAINT pk_job_results PRIMARY KEY (id), 
	CONSTRAINT fk_job_results_job_key_jobs FOREIGN KEY(job_key) REFERENCES jobs ("key") ON DELETE CASCADE, 
	CONSTRAINT uq_job_results_folder_rel_path_sha256 UNIQUE (folder, rel_path, sha256)
);
CREATE TABLE jobs (
	"key" VARCHAR(64) NOT NULL, 
	folder TEXT NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	mode VARCHAR(16) NOT NULL, 
	sha256 VARCHAR(64) NOT NULL, 
	input_file_id VARCHAR(128) NOT NULL, 
	rel_path TEXT NOT NULL, 
	state VARCHAR(16) NOT NULL, 
	model TEXT, 
	remote_job_id VARCHAR(128), 
	remote_status VARCHAR(32), 
	total_requests INTEGER, 
	completed_requests INTEGER, 
	succeeded_requests INTEGER, 
	failed_requests INTEGER, 
	output_file_id VARCHAR(128), 
	error_file_id VARCHAR(128), 
	reason TEXT, 
	requests_sent INTEGER DEFAULT '0' NOT NULL, 
	answers_lost INTEGER DEFAULT '0' NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	intent_at DATETIME, 
	remote_created_at DATETIME, 
	finished_at DATETIME, 
	claimed_by VARCHAR(63), 
	claimed_until DATETIME, 
	result_bytes BIGINT DEFAULT '0' NOT NULL, 
	CONSTRAINT pk_jobs PRIMARY KEY ("key")
);
CREATE TABLE "local_files" (
	id INTEGER NOT NULL, 
	folder TEXT NOT NULL, 
	rel_path TEXT NOT NULL, 
	purpose VARCHAR(32) NOT NULL, 
	size BIGINT NOT NULL, 
	mtime_ns BIGINT NOT NULL, 
	inode BIGINT NOT NULL, 
	sha256 VARCHAR(64), 
	state VARCHAR(16) NOT NULL, 
	attempts INTEGER DEFAULT '0' NOT NULL, 
	next_attempt_at DATETIME, 
	last_error TEXT, 
	remote_file_id VARCHAR(128), 
	intent_started_at DATETIME, 
	intent_filename TEXT, 
	first_seen_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	state_changed_at DATETIME NOT NULL, 
	warnings TEXT, 
	claimed_by VARCHAR(63), 
	ctime_ns BIGINT, 
	racy BOOLEAN DEFAULT 0 NOT NULL, 
	CONSTRAINT pk_local_files PRIMARY KEY (id), 
	CONSTRAINT uq_local_files_folder_rel_path UNIQUE (folder, rel_path)
);
CREATE TABLE meta (
	"key" VARCHAR(64) NOT NULL, 
	value TEXT NOT NULL, 
	CONSTRAINT pk_meta PRIMARY KEY ("key")
);
CREATE TABLE nodes (
	name VARCHAR(63) NOT NULL, 
	version VARCHAR(32) NOT NULL, 
	pid INTEGER NOT NULL, 
	started_at DATETIME NOT NULL, 
	last_seen_at DATETIME NOT NULL, 
	queue_depth INTEGER DEFAULT '0' NOT NULL, 
	folders TEXT, 
	problems TEXT, 
	CONSTRAINT pk_nodes PRIMARY KEY (name)
);
CREATE TABLE remote_files (
	file_id VARCHAR(128) NOT NULL, 
	purpose VARCHAR(32) NOT NULL, 
	filename TEXT NOT NULL, 
	bytes BIGINT NOT NULL, 
	sha256 VARCHAR(64) NOT NULL, 
	created_at DATETIME NOT NULL, 
	uploaded_at DATETIME NOT NULL, 
	local_file_id INTEGER, 
	folder TEXT NOT NULL, 
	rel_path TEXT NOT NULL, 
	superseded_at DATETIME, 
	deleted_at DATETIME, 
	delete_reason TEXT, 
	CONSTRAINT pk_remote_files PRIMARY KEY (file_id), 
	CONSTRAINT fk_remote_files_local_file_id_local_files FOREIGN KEY(local_file_id) REFERENCES local_files (id) ON DELETE SET NULL
);
CREATE TABLE result_files (
	folder TEXT NOT NULL, 
	path TEXT NOT NULL, 
	sha256 VARCHAR(64) NOT NULL, 
	size BIGINT NOT NULL, 
	job_key VARCHAR(64) NOT NULL, 
	input_rel_path TEXT NOT NULL, 
	written_at DATETIME NOT NULL, 
	CONSTRAINT pk_result_files PRIMARY KEY (folder, path)
);
CREATE INDEX ix_audit_at ON audit (at);
CREATE INDEX ix_job_results_job_key ON job_results (job_key);
CREATE INDEX ix_jobs_folder_state ON jobs (folder, state);
CREATE INDEX ix_jobs_remote_job_id ON jobs (remote_job_id);
CREATE INDEX ix_local_files_folder_state_state_changed_at ON local_files (folder, state, state_changed_at);
CREATE INDEX ix_local_files_sha256 ON local_files (sha256);
CREATE INDEX ix_local_files_state_next_attempt_at ON local_files (state, next_attempt_at, state_changed_at);
CREATE INDEX ix_remote_files_local_file_id ON remote_files (local_file_id);
CREATE INDEX ix_remote_files_sha256_purpose ON remote_files (sha256, purpose);
CREATE INDEX ix_result_files_job_key ON result_files (job_key);
