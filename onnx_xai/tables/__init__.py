"""Tables: rows read from files, explained column by column, written as a table and a figure."""
