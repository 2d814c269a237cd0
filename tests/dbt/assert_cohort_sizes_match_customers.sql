{#-
    Summed over cohorts, cohort sizes equal the customers with a purchase, for every segment
    type; and period 0 retention is 1 everywhere.
-#}
with

buyers as (

    select count(*) as customers
    from {{ ref('customers') }}
    where has_purchased

),

cohort_totals as (

    select
        segment_type,
        sum(cohort_size) as customers,
        min(retention_rate) as min_period_0_retention,
        max(retention_rate) as max_period_0_retention
    from {{ ref('customer_cohorts') }}
    where period_number = 0
    group by segment_type

)

select
    cohort_totals.*,
    buyers.customers as expected_customers
from cohort_totals
cross join buyers
where
    cohort_totals.customers != buyers.customers
    or cohort_totals.min_period_0_retention != 1
    or cohort_totals.max_period_0_retention != 1
