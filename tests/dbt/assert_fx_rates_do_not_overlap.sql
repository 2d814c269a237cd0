-- Each currency has at most one rate for any day, so converting an order never doubles it.
select
    earlier.currency,
    earlier.valid_from,
    later.valid_from as overlapping_valid_from
from {{ ref('fx_rates') }} as earlier
inner join {{ ref('fx_rates') }} as later
    on earlier.currency = later.currency
    and earlier.valid_from < later.valid_from
    and earlier.valid_to > later.valid_from
