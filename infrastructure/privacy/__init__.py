"""Personal data: keys per data subject, and the encryption of fields with
them (``keys``), kept in ``subject_keys`` (``store``)."""
