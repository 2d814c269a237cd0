{#-
    Monthly retention KPIs, one row per month and segment, with no gaps (DESIGN §7). The counts
    come from int_retention_monthly_counts; the formulas are here, unit-tested on hand-written
    counts:
      customer_retention_rate  = (customers_end - new_customers) / customers_start
      retained_from_start_rate = retained_customers / customers_start
      churn_rate               = churned_customers / customers_start
-#}
with

counts as (

    select * from {{ ref('int_retention_monthly_counts') }}

),

final as (

    select
        month,
        segment_type,
        segment_value,
        cast(customers_start as integer) as customers_start,
        cast(new_customers as integer) as new_customers,
        cast(customers_end as integer) as customers_end,
        cast(retained_customers as integer) as retained_customers,
        cast(reactivated_customers as integer) as reactivated_customers,
        cast(churned_customers as integer) as churned_customers,
        cast(
            case
                when customers_start > 0
                    then {{ ratio('customers_end - new_customers', 'customers_start') }}
            end
            as {{ type_double() }}
        ) as customer_retention_rate,
        cast(
            case when customers_start > 0 then {{ ratio('retained_customers', 'customers_start') }} end
            as {{ type_double() }}
        ) as retained_from_start_rate,
        cast(
            case when customers_start > 0 then {{ ratio('churned_customers', 'customers_start') }} end
            as {{ type_double() }}
        ) as churn_rate,
        cast(
            case
                when customers_to_date > 0
                    then {{ ratio('repeat_customers_to_date', 'customers_to_date') }}
            end
            as {{ type_double() }}
        ) as repeat_purchase_rate,
        cast(case when gaps > 0 then {{ ratio('gap_days', 'gaps') }} end as {{ type_double() }})
            as avg_days_between_purchases,
        cast(customers_end as integer) as active_customers,
        cast(customers_to_date - customers_end as integer) as inactive_customers,
        cast(purchasing_customers as integer) as purchasing_customers,
        cast(revenue as decimal(18, 2)) as revenue,
        cast(orders as integer) as orders,
        cast(retention_spend as decimal(18, 2)) as retention_spend,
        {{ divide_money('retention_spend', 'nullif(customers_end, 0)') }}
            as retention_cost_per_active_customer
    from counts

)

select * from final
