{#-
    The monthly identities of DESIGN §7, row by row:
      churn_rate + retained_from_start_rate = 1            (where S > 0)
      E - N = retained + reactivated
      S = retained + churned
-#}
select
    month,
    segment_type,
    segment_value,
    customers_start,
    new_customers,
    customers_end,
    retained_customers,
    reactivated_customers,
    churned_customers,
    churn_rate,
    retained_from_start_rate
from {{ ref('retention_monthly') }}
where
    (customers_start > 0 and abs(churn_rate + retained_from_start_rate - 1) > 0.000000001)
    or customers_end - new_customers != retained_customers + reactivated_customers
    or customers_start != retained_customers + churned_customers
