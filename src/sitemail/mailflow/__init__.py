"""The mail-flow pieces the hub (:mod:`sitemail.transport`) and Mail Submission
(:mod:`sitemail.mailbox`) share, below both: the outbound SMTP client
(:mod:`.smtp_sender`, its choices in :mod:`.send_decision`, Exchange Server
authentication in :mod:`.exchange_auth`), the envelope a message travels with
(:mod:`.envelope`), non-delivery and delay reports (:mod:`.dsn`), and the
records mail flow leaves: the SmtpSend/SmtpReceive protocol logs
(:mod:`.protocol_log`) and the message tracking log (:mod:`.tracking_log`), both
written through :mod:`.log_files`.
"""
