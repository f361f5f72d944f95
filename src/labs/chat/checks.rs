//! The grader's checks for 05-chat's exercise (filled in below).
