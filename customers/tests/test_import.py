"""The CSV import (customers.importer and the import_customers command), per the contract."""

import csv
import io
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from customers import bulk, importer
from customers.importer import (
    CustomerImportError,
    ImportResult,
    ImportRowError,
    import_customers_csv,
)
from customers.management.commands.import_customers import Command
from customers.models import Customer, CustomerEvent, CustomerStatus, Tenant
from customers.scope import Scope
from customers.tests.factories import at, make_customer

GENERATED_ID = re.compile(r"cust_[0-9A-HJKMNP-TV-Z]{26}")


def csv_file(directory: Path, rows: list[list[str]], *, prefix: bytes = b"") -> Path:
    """A CSV file of ``rows`` (the first is the header), with ``\\n`` line ends."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    path = directory / "customers.csv"
    path.write_bytes(prefix + buffer.getvalue().encode("utf-8"))
    return path


def raw_file(directory: Path, text: str) -> Path:
    path = directory / "customers.csv"
    path.write_bytes(text.encode("utf-8"))
    return path


def run_import(path: Path, scope: Scope) -> ImportResult:
    return import_customers_csv(
        path=path, tenant_id=scope.tenant_id, environment_id=scope.environment_id
    )


def import_error(path: Path, scope: Scope) -> ImportRowError:
    with pytest.raises(ImportRowError) as caught:
        run_import(path, scope)
    return caught.value


def count(scope: Scope) -> int:
    return Customer.objects.filter(
        tenant_id=scope.tenant_id, environment_id=scope.environment_id
    ).count()


# -- Header ---------------------------------------------------------------------------------


def test_header_in_any_order_with_a_bom(scope_a, tmp_path):
    path = csv_file(
        tmp_path,
        [
            ["address_country", "name", "email", "external_id"],
            ["de", "Ada", "ada@example.com", "ext-1"],
        ],
        prefix=b"\xef\xbb\xbf",
    )

    result = run_import(path, scope_a.scope)

    assert result.imported == 1
    customer = Customer.objects.get(external_id="ext-1")
    assert (customer.name, customer.email, customer.address_country) == (
        "Ada",
        "ada@example.com",
        "DE",  # normalised by the shared field rules
    )
    assert customer.scope == scope_a.scope


@pytest.mark.parametrize("missing", ["external_id", "name"])
def test_external_id_and_name_columns_are_required(scope_a, tmp_path, missing):
    header = [column for column in ("external_id", "name", "email") if column != missing]
    path = csv_file(tmp_path, [header, ["x"] * len(header)])

    error = import_error(path, scope_a.scope)

    assert (error.line, error.field) == (1, missing)
    assert missing in str(error)
    assert count(scope_a.scope) == 0


def test_unknown_column_is_named(scope_a, tmp_path):
    path = csv_file(tmp_path, [["external_id", "name", "nickname"], ["e1", "Ada", "Addy"]])

    error = import_error(path, scope_a.scope)

    assert (error.line, error.field) == (1, "nickname")
    assert str(error).startswith("line 1: unknown column 'nickname'")


def test_an_empty_file_is_refused_and_a_header_alone_imports_nothing(scope_a, tmp_path):
    error = import_error(raw_file(tmp_path, ""), scope_a.scope)
    assert (error.line, error.field) == (1, None)

    assert run_import(raw_file(tmp_path, "external_id,name\n"), scope_a.scope).imported == 0


def test_duplicate_column_is_refused(scope_a, tmp_path):
    path = csv_file(tmp_path, [["external_id", "name", "name"], ["e1", "Ada", "Ada"]])

    error = import_error(path, scope_a.scope)

    assert (error.line, error.field) == (1, "name")
    assert "twice" in error.message


def test_scope_columns_equal_to_the_flags_are_accepted(scope_a, tmp_path):
    path = csv_file(
        tmp_path,
        [
            ["tenant_id", "environment_id", "external_id", "name"],
            ["tenant_a", "env_a", "e1", "Ada"],
        ],
    )

    assert run_import(path, scope_a.scope).imported == 1
    assert Customer.objects.get(external_id="e1").scope == scope_a.scope


@pytest.mark.parametrize(
    ("column", "value"), [("tenant_id", "tenant_b"), ("environment_id", "env_b")]
)
def test_scope_columns_that_differ_from_the_flags_are_refused(
    scope_a, scope_b, tmp_path, column, value
):
    row = {"tenant_id": "tenant_a", "environment_id": "env_a", column: value}
    path = csv_file(
        tmp_path,
        [
            ["tenant_id", "environment_id", "external_id", "name"],
            ["tenant_a", "env_a", "e1", "Ada"],
            [row["tenant_id"], row["environment_id"], "e2", "Bob"],
        ],
    )

    error = import_error(path, scope_a.scope)

    assert (error.line, error.field) == (3, column)
    assert Customer.objects.count() == 0


# -- Ids ------------------------------------------------------------------------------------


def test_given_ids_are_kept_and_missing_ones_generated(scope_a, tmp_path):
    path = csv_file(
        tmp_path,
        [["id", "external_id", "name"], ["legacy_42", "e1", "Ada"], ["", "e2", "Bob"]],
    )

    run_import(path, scope_a.scope)

    assert Customer.objects.get(external_id="e1").id == "legacy_42"
    assert GENERATED_ID.fullmatch(Customer.objects.get(external_id="e2").id)


def test_an_id_outside_the_allowed_characters_is_refused(scope_a, tmp_path):
    path = csv_file(tmp_path, [["id", "external_id", "name"], ["bad id!", "e1", "Ada"]])

    error = import_error(path, scope_a.scope)

    assert (error.line, error.field) == (2, "id")


def test_an_id_existing_in_any_scope_is_refused(scope_a, scope_b, tmp_path):
    # Ids are global primary keys: another tenant's customer blocks the id too.
    make_customer(scope_b.environment, id="taken_1")
    path = csv_file(
        tmp_path,
        [["id", "external_id", "name"], ["fresh_1", "e1", "Ada"], ["taken_1", "e2", "Bob"]],
    )

    error = import_error(path, scope_a.scope)

    assert (error.line, error.field) == (3, "id")
    assert "taken_1" in error.message
    assert count(scope_a.scope) == 0


def test_an_id_twice_in_the_file_is_refused(scope_a, tmp_path):
    path = csv_file(
        tmp_path,
        [
            ["id", "external_id", "name"],
            ["c1", "e1", "Ada"],
            ["c2", "e2", "Bob"],
            ["c1", "e3", "Cy"],
        ],
    )

    error = import_error(path, scope_a.scope)

    assert (error.line, error.field) == (4, "id")
    assert "line 2" in error.message
    assert count(scope_a.scope) == 0


@pytest.mark.parametrize("with_ids", [True, False], ids=["given ids", "generated ids"])
def test_the_same_file_twice_fails_on_its_first_row_and_writes_nothing(scope_a, tmp_path, with_ids):
    rows = [["id", "external_id", "name"]] + [[f"c{n}", f"e{n}", f"N{n}"] for n in range(5)]
    if not with_ids:
        rows = [row[1:] for row in rows]
    path = csv_file(tmp_path, rows)
    run_import(path, scope_a.scope)
    snapshot = sorted(Customer.objects.values_list("id", "updated_at"))

    error = import_error(path, scope_a.scope)

    assert error.line == 2
    assert error.field == ("id" if with_ids else "external_id")
    assert sorted(Customer.objects.values_list("id", "updated_at")) == snapshot


# -- Values ---------------------------------------------------------------------------------


def test_status_defaults_to_published(scope_a, tmp_path):
    path = csv_file(
        tmp_path,
        [["external_id", "name", "status"], ["e1", "Ada", ""], ["e2", "Bob", "draft"]],
    )

    run_import(path, scope_a.scope)

    assert Customer.objects.get(external_id="e1").status == CustomerStatus.PUBLISHED
    assert Customer.objects.get(external_id="e2").status == CustomerStatus.DRAFT


def test_a_missing_status_column_means_published(scope_a, tmp_path):
    run_import(csv_file(tmp_path, [["external_id", "name"], ["e1", "Ada"]]), scope_a.scope)

    assert Customer.objects.get(external_id="e1").status == CustomerStatus.PUBLISHED


def test_only_updated_at_given_makes_created_at_the_same_instant(scope_a, tmp_path):
    # Not the import time, which would put the creation after the last update.
    path = csv_file(
        tmp_path, [["external_id", "name", "updated_at"], ["e1", "Ada", "2021-02-03T04:05:06Z"]]
    )

    run_import(path, scope_a.scope)

    customer = Customer.objects.get(external_id="e1")
    assert customer.created_at == customer.updated_at == at("2021-02-03T04:05:06")


def test_timestamps_keep_their_instant_whatever_the_offset(scope_a, tmp_path):
    path = csv_file(
        tmp_path,
        [
            ["external_id", "name", "created_at", "updated_at"],
            ["e1", "Ada", "2024-01-15T12:30:00.123456+02:00", "2024-03-01T08:00:00Z"],
            ["e2", "Bob", "2024-01-15T05:00:00.5-05:30", "2024-01-15T10:30:00.5+00:00"],
        ],
    )

    run_import(path, scope_a.scope)

    first = Customer.objects.get(external_id="e1")
    assert first.created_at == datetime(2024, 1, 15, 10, 30, 0, 123456, tzinfo=UTC)
    assert first.updated_at == at("2024-03-01T08:00:00")
    second = Customer.objects.get(external_id="e2")
    assert second.created_at == second.updated_at == at("2024-01-15T10:30:00.500000")


def test_missing_timestamps_are_the_import_time(scope_a, tmp_path):
    path = csv_file(
        tmp_path,
        [
            ["external_id", "name", "created_at"],
            ["e1", "Ada", ""],
            ["e2", "Bob", ""],
            ["e3", "Cy", "2020-05-05T05:05:05Z"],
        ],
    )
    before = timezone.now()

    run_import(path, scope_a.scope)

    after = timezone.now()
    first, second, third = (
        Customer.objects.get(external_id=external_id) for external_id in ("e1", "e2", "e3")
    )
    assert before <= first.created_at <= after
    # One instant for the whole import.
    assert first.created_at == first.updated_at == second.created_at == second.updated_at
    # Only created_at given: updated_at is that instant, not the (later) import time.
    assert third.created_at == third.updated_at == at("2020-05-05T05:05:05")


@pytest.mark.parametrize(
    "value",
    ["2024-01-15T10:30:00", "2024-01-15", "yesterday", "0001-01-01T00:30:00+01:00"],
    ids=["no offset", "date only", "not a time", "before year 1 in UTC"],
)
def test_a_timestamp_without_an_offset_or_out_of_range_is_refused(scope_a, tmp_path, value):
    path = csv_file(
        tmp_path,
        [
            ["external_id", "name", "updated_at"],
            ["e1", "Ada", "2024-01-15T10:30:00Z"],
            ["e2", "Bob", value],
        ],
    )

    error = import_error(path, scope_a.scope)

    assert (error.line, error.field) == (3, "updated_at")
    assert count(scope_a.scope) == 0


def test_empty_cells_mean_null_empty_object_or_empty_string(scope_a, tmp_path):
    path = csv_file(
        tmp_path,
        [
            [
                "external_id",
                "name",
                "email",
                "parent_customer_id",
                "metadata",
                "address_line1",
                "address_city",
                "address_country",
            ],
            ["e1", "Ada", "", "", "", "", "", ""],
            ["e2", "Bob", "bob@example.com", "", '{"plan": "pro"}', "1 Road", "Oslo", "no"],
        ],
    )

    run_import(path, scope_a.scope)

    empty = Customer.objects.get(external_id="e1")
    assert empty.email is None
    assert empty.email_key is None
    assert empty.parent_id is None
    assert empty.metadata == {}
    assert (empty.address_line1, empty.address_city, empty.address_country) == ("", "", "")
    assert empty.address_line2 == ""  # no column at all
    full = Customer.objects.get(external_id="e2")
    assert full.email == "bob@example.com"
    assert full.metadata == {"plan": "pro"}
    assert (full.address_line1, full.address_city, full.address_country) == (
        "1 Road",
        "Oslo",
        "NO",
    )


def test_sort_keys_are_set(scope_a, tmp_path):
    path = csv_file(
        tmp_path, [["external_id", "name", "email"], ["e1", "ÉMILE Zola", "Emile@Example.COM"]]
    )

    run_import(path, scope_a.scope)

    customer = Customer.objects.get(external_id="e1")
    assert customer.name_key == "émile zola"
    assert customer.email_key == "emile@example.com"
    assert customer.email == "Emile@Example.COM"  # stored as given


def test_derived_keys_are_those_save_computes(scope_a, tmp_path):
    # Bulk writes skip save(): every derived key (sort and search keys) must still be set.
    path = csv_file(
        tmp_path,
        [
            ["external_id", "name", "email"],
            ["Ext-Ä1", "ÄDA Lovelace", "Ada@X.org"],
            ["e2", "B", ""],
        ],
    )
    run_import(path, scope_a.scope)

    for customer in Customer.objects.all():
        imported = [getattr(customer, field) for field in Customer.DERIVED_KEY_FIELDS]
        customer.save()
        customer.refresh_from_db()
        assert [getattr(customer, field) for field in Customer.DERIVED_KEY_FIELDS] == imported


# -- Parents --------------------------------------------------------------------------------


def test_a_parent_may_come_later_in_the_file(scope_a, tmp_path):
    path = csv_file(
        tmp_path,
        [
            ["id", "external_id", "name", "parent_customer_id"],
            ["child", "e1", "Child", "parent"],
            ["parent", "e2", "Parent", "grandparent"],
            ["grandparent", "e3", "Grandparent", ""],
        ],
    )

    run_import(path, scope_a.scope)

    assert Customer.objects.get(id="child").parent_id == "parent"
    assert Customer.objects.get(id="parent").parent_id == "grandparent"


@pytest.mark.parametrize("status", [CustomerStatus.PUBLISHED, CustomerStatus.ARCHIVED])
def test_a_parent_may_be_an_existing_customer_of_the_scope(scope_a, tmp_path, status):
    parent = make_customer(scope_a.environment, status=status)
    path = csv_file(
        tmp_path, [["external_id", "name", "parent_customer_id"], ["e-child", "Kid", parent.id]]
    )

    run_import(path, scope_a.scope)

    assert Customer.objects.get(external_id="e-child").parent_id == parent.id


def test_a_parent_in_another_scope_is_refused(scope_a, scope_a_sandbox, scope_b, tmp_path):
    other_tenant = make_customer(scope_b.environment)
    other_environment = make_customer(scope_a_sandbox.environment)
    for line_3_parent in (other_tenant.id, other_environment.id, "nobody"):
        path = csv_file(
            tmp_path,
            [
                ["external_id", "name", "parent_customer_id"],
                ["e1", "Ada", ""],
                ["e2", "Bob", line_3_parent],
            ],
        )

        error = import_error(path, scope_a.scope)

        assert (error.line, error.field) == (3, "parent_customer_id")
        assert count(scope_a.scope) == 0


def test_a_cycle_in_the_file_is_refused(scope_a, tmp_path):
    path = csv_file(
        tmp_path,
        [
            ["id", "external_id", "name", "parent_customer_id"],
            ["root", "e0", "Root", ""],
            ["a", "e1", "A", "c"],
            ["b", "e2", "B", "a"],
            ["c", "e3", "C", "b"],
            ["d", "e4", "D", "a"],
        ],
    )

    error = import_error(path, scope_a.scope)

    assert (error.line, error.field) == (3, "parent_customer_id")
    assert "a -> c -> b -> a" in error.message
    assert count(scope_a.scope) == 0


def test_a_customer_cannot_be_its_own_parent(scope_a, tmp_path):
    path = csv_file(
        tmp_path,
        [["id", "external_id", "name", "parent_customer_id"], ["me", "e1", "Me", "me"]],
    )

    error = import_error(path, scope_a.scope)

    assert (error.line, error.field) == (2, "parent_customer_id")
    assert "itself" in error.message


# -- external_id uniqueness -----------------------------------------------------------------


def test_a_live_external_id_twice_in_the_file_is_refused(scope_a, tmp_path):
    path = csv_file(
        tmp_path,
        [["external_id", "name", "status"], ["e1", "Ada", "published"], ["e1", "Bob", "draft"]],
    )

    error = import_error(path, scope_a.scope)

    assert (error.line, error.field) == (3, "external_id")
    assert count(scope_a.scope) == 0


def test_an_archived_duplicate_external_id_in_the_file_is_allowed(scope_a, tmp_path):
    path = csv_file(
        tmp_path,
        [
            ["external_id", "name", "status"],
            ["e1", "Old", "archived"],
            ["e1", "Older", "archived"],
            ["e1", "Current", "published"],
        ],
    )

    assert run_import(path, scope_a.scope).imported == 3


def test_an_external_id_live_in_the_scope_is_refused(scope_a, tmp_path):
    make_customer(scope_a.environment, external_id="e1", status=CustomerStatus.DRAFT)
    path = csv_file(tmp_path, [["external_id", "name"], ["e0", "Ada"], ["e1", "Bob"]])

    error = import_error(path, scope_a.scope)

    assert (error.line, error.field) == (3, "external_id")
    assert count(scope_a.scope) == 1


def test_an_external_id_archived_in_the_scope_or_live_elsewhere_is_allowed(
    scope_a, scope_b, tmp_path
):
    make_customer(scope_a.environment, external_id="e1", status=CustomerStatus.ARCHIVED)
    make_customer(scope_b.environment, external_id="e1")
    path = csv_file(tmp_path, [["external_id", "name"], ["e1", "Bob"]])

    assert run_import(path, scope_a.scope).imported == 1
    assert count(scope_a.scope) == 2


def test_an_archived_row_may_reuse_an_external_id_live_in_the_scope(scope_a, tmp_path):
    make_customer(scope_a.environment, external_id="e1")
    path = csv_file(tmp_path, [["external_id", "name", "status"], ["e1", "Gone", "archived"]])

    assert run_import(path, scope_a.scope).imported == 1


# -- Errors name the physical line and the field --------------------------------------------


@pytest.mark.parametrize("line_end", ["\n", "\r\n"])
def test_a_bad_email_names_its_physical_line(scope_a, tmp_path, line_end):
    text = line_end.join(
        [
            "external_id,name,address_line1,email",
            'e1,Ada,"1 Main Street',  # line 2: a quoted cell over three lines
            "Suite 4",
            'Back door",ada@example.com',
            "",  # line 5: a blank line holds no record
            "e2,Bob,,bob@example.com",  # line 6
            'e3,Cy,"Flat 2',  # line 7: the bad record starts here and ends on line 8
            'High Street",not-an-email',
            "",
        ]
    )

    error = import_error(raw_file(tmp_path, text), scope_a.scope)

    assert str(error) == "line 7: email must be a valid email address"
    assert (error.line, error.field) == (7, "email")
    assert count(scope_a.scope) == 0


def test_a_nul_byte_in_a_cell_is_refused(scope_a, tmp_path):
    path = csv_file(tmp_path, [["external_id", "name"], ["e1", "Ada"], ["e2", "Bo\x00b"]])

    error = import_error(path, scope_a.scope)

    assert (error.line, error.field) == (3, "name")
    assert "NUL" in error.message
    assert count(scope_a.scope) == 0


@pytest.mark.parametrize(
    "metadata", ['{"plan": "pro"', "not json", "[1, 2]", '{"seats": 5}', '{"k": "\\u0000"}']
)
def test_bad_metadata_is_refused(scope_a, tmp_path, metadata):
    path = csv_file(tmp_path, [["external_id", "name", "metadata"], ["e1", "Ada", metadata]])

    error = import_error(path, scope_a.scope)

    assert (error.line, error.field) == (2, "metadata")
    assert error.message.startswith("metadata ")
    assert count(scope_a.scope) == 0


def test_a_record_with_the_wrong_number_of_cells_is_refused(scope_a, tmp_path):
    path = raw_file(tmp_path, "external_id,name\ne1,Ada\ne2,Bob,extra\n")

    error = import_error(path, scope_a.scope)

    assert error.line == 3
    assert "3 cells" in error.message


def test_invalid_utf8_names_its_line(scope_a, tmp_path):
    path = tmp_path / "customers.csv"
    path.write_bytes(b"external_id,name\ne1,Ada\ne2,B\xff\n")

    error = import_error(path, scope_a.scope)

    assert error.line == 3
    assert "UTF-8" in error.message


def test_an_error_on_the_last_row_writes_nothing(scope_a, tmp_path):
    rows = [["id", "external_id", "name", "address_country"]]
    rows += [[f"c{n}", f"e{n}", f"Customer {n}", "US"] for n in range(250)]
    rows.append(["c250", "e250", "Customer 250", "Atlantis"])
    path = csv_file(tmp_path, rows)

    error = import_error(path, scope_a.scope)

    assert (error.line, error.field) == (252, "address_country")
    assert Customer.objects.count() == 0
    # The same rows without the bad one import, so the count above is not vacuous.
    assert run_import(csv_file(tmp_path, rows[:-1]), scope_a.scope).imported == 250


def test_a_conflict_found_while_writing_writes_nothing(scope_a, scope_b, tmp_path, monkeypatch):
    # The database refuses the last row's id, but the diagnosis that follows a refusal finds
    # no row to blame (as when a concurrent writer's row has gone again by then).
    make_customer(scope_b.environment, id="c250")
    monkeypatch.setattr(importer, "earliest_problem", lambda **_: None)
    monkeypatch.setattr(bulk, "BULK_CREATE_BATCH_SIZE", 10)  # several batches on SQLite
    rows = [["id", "external_id", "name"]] + [[f"c{n}", f"e{n}", f"N{n}"] for n in range(251)]

    with pytest.raises(CustomerImportError, match="concurrent change") as caught:
        run_import(csv_file(tmp_path, rows), scope_a.scope)

    assert not isinstance(caught.value, ImportRowError)
    assert count(scope_a.scope) == 0


# -- The command ----------------------------------------------------------------------------


def test_the_command_imports_and_prints_a_summary(scope_a, tmp_path):
    path = csv_file(tmp_path, [["external_id", "name"], ["e1", "Ada"], ["e2", "Bob"]])
    stdout, stderr = io.StringIO(), io.StringIO()

    call_command(
        "import_customers",
        str(path),
        tenant="tenant_a",
        environment="env_a",
        stdout=stdout,
        stderr=stderr,
    )

    assert re.fullmatch(
        r"Imported 2 customers into tenant_a/env_a in \d+\.\d\ds \(\d+ rows/s\)\n",
        stdout.getvalue(),
    )
    assert stderr.getvalue() == ""  # no progress display when stderr is not a terminal
    assert count(scope_a.scope) == 2


def test_the_command_shows_progress_on_a_terminal(scope_a, tmp_path):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    path = csv_file(tmp_path, [["external_id", "name"], ["e1", "Ada"]])
    stderr = Terminal()

    call_command(
        "import_customers",
        str(path),
        tenant="tenant_a",
        environment="env_a",
        stdout=io.StringIO(),
        stderr=stderr,
    )

    assert "\rwriting 1/1 rows" in stderr.getvalue()


def test_the_command_reports_a_bad_row_as_a_command_error(scope_a, tmp_path):
    path = csv_file(tmp_path, [["external_id", "name", "email"], ["e1", "Ada", "nope"]])

    with pytest.raises(CommandError, match=r"^line 2: email must be a valid email address$"):
        call_command("import_customers", str(path), tenant="tenant_a", environment="env_a")


@pytest.mark.parametrize(
    ("tenant", "environment", "message"),
    [
        ("tenant_x", "env_a", "tenant 'tenant_x' does not exist"),
        ("tenant_a", "env_x", "environment 'env_x' does not exist"),
        ("tenant_a", "env_b", "environment 'env_b' belongs to tenant 'tenant_b'"),
    ],
)
def test_the_scope_must_exist_and_match(scope_a, scope_b, tmp_path, tenant, environment, message):
    path = csv_file(tmp_path, [["external_id", "name"], ["e1", "Ada"]])

    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("import_customers", str(path), tenant=tenant, environment=environment)
    assert not Customer.objects.exists()
    assert not Tenant.objects.filter(id="tenant_x").exists()  # an import creates no scope


def test_from_the_command_line_an_error_exits_1_without_a_traceback(scope_a, tmp_path, monkeypatch):
    path = csv_file(tmp_path, [["external_id", "name", "email"], ["e1", "Ada", "nope"]])
    stderr = io.StringIO()
    # run_from_argv closes every connection when done, which would end the test's transaction.
    monkeypatch.setattr("django.core.management.base.connections.close_all", lambda: None)

    with pytest.raises(SystemExit) as exit_info:
        Command(stdout=io.StringIO(), stderr=stderr).run_from_argv(
            [
                "manage.py",
                "import_customers",
                str(path),
                "--tenant",
                "tenant_a",
                "--environment",
                "env_a",
            ]
        )

    assert exit_info.value.code == 1
    assert stderr.getvalue() == "CommandError: line 2: email must be a valid email address\n"


def test_a_missing_file_is_a_command_error(scope_a, tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        call_command(
            "import_customers", str(tmp_path / "nope.csv"), tenant="tenant_a", environment="env_a"
        )


# -- At any size ----------------------------------------------------------------------------


def numbered_rows(count: int, *, parent_every: int = 0) -> list[list[str]]:
    rows = [["id", "external_id", "name", "metadata", "parent_customer_id"]]
    for n in range(count):
        parent = f"c{n - 1}" if parent_every and n % parent_every == 1 else ""
        rows.append([f"c{n}", f"e{n}", f"Customer {n}", '{"plan": "growth"}', parent])
    return rows


def test_rows_and_their_events_are_written_a_batch_at_a_time(scope_a, tmp_path, monkeypatch):
    monkeypatch.setattr(importer, "IMPORT_BATCH_ROWS", 10)
    result = run_import(csv_file(tmp_path, numbered_rows(95, parent_every=3)), scope_a.scope)
    assert result.imported == count(scope_a.scope) == 95
    assert CustomerEvent.objects.filter(type="customer.created").count() == 95
    assert Customer.objects.filter(parent__isnull=False).count() == 32


def test_the_rows_held_at_once_do_not_grow_with_the_file(scope_a, tmp_path, monkeypatch):
    """Only a batch of rows is alive at any time, whatever the file's size (the importer
    before 8053c20 held every row to the end). Counted, not timed: each row read is an
    instance of a subclass that counts itself in and, when freed, out."""
    monkeypatch.setattr(importer, "IMPORT_BATCH_ROWS", 100)
    alive = {"now": 0, "most": 0}

    class CountedRow(importer.CustomerRow):
        __slots__ = ()

        def __del__(self):
            alive["now"] -= 1

    read_row = importer.customer_row

    def counted_row(**kwargs):
        row = CountedRow(*read_row(**kwargs))
        alive["now"] += 1
        alive["most"] = max(alive["most"], alive["now"])
        return row

    monkeypatch.setattr(importer, "customer_row", counted_row)
    assert run_import(csv_file(tmp_path, numbered_rows(3_000)), scope_a.scope).imported == 3_000
    assert alive["most"] <= 2 * importer.IMPORT_BATCH_ROWS, alive


def test_a_duplicate_found_by_the_database_is_named_before_a_later_bad_row(scope_a, tmp_path):
    rows = numbered_rows(60)
    rows[40][0] = "c3"  # line 41 repeats line 5's id
    rows[55][2] = ""  # line 57: a row without a name
    error = import_error(csv_file(tmp_path, rows), scope_a.scope)
    assert (error.line, error.field) == (41, "id")
    assert "first on line 5" in error.message
    assert count(scope_a.scope) == 0


def test_duplicates_across_batches_name_the_earliest_line(scope_a, tmp_path, monkeypatch):
    monkeypatch.setattr(importer, "IMPORT_BATCH_ROWS", 10)
    rows = numbered_rows(60)
    rows[50][1] = "e7"  # line 51: the live external id of line 9
    error = import_error(csv_file(tmp_path, rows), scope_a.scope)
    assert (error.line, error.field) == (51, "external_id")
    assert "also on line 9" in error.message
    assert count(scope_a.scope) == 0
